"""The agent's own encoded frames, for whenever the customer's picture would be exactly them.

In the ``agent`` layout at the composite's own size, the composite IS the agent's camera:
decoding it, composing one tile and encoding it again only adds latency (the server's
share was 14-43 ms p50 in Chromium calls on 2 cores, most of it that decode and encode)
and CPU. :class:`CameraPassthrough` taps the camera's complete frames as they came and
queues them while media.program forwards them (or waits for a keyframe to start on).
The program decides when: any other layout, a cross-fade, a camera at another size or a
codec the two sides do not share keeps the composite. While the camera is forwarded, the
viewers' bandwidth estimate caps the agent's sender (REMB), as an SFU does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable

import av
from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterFrame

from media import aiortc_internals as internals
from media.capture_clock import CaptureClock, CaptureTimes, CompositeTimes, rtp_distance
from media.encoded import UNCAPPED_BPS, VIDEO_RATE, VIDEO_TIME_BASE, KeyframeQueue, is_keyframe

logger = logging.getLogger(__name__)

STALL_S = 0.5  # no camera frame for this long: the composite (and its clock) takes over
REANCHOR_S = 0.2  # a forwarded frame's capture-spaced pts may stray this far from its arrival


class CameraPassthrough:
    """The agent camera's encoded frames, queued while ``wanted`` (``eligible()``: the composite is them).

    The room points it at the camera's receiver (:meth:`follow`); media.program takes the frames.
    """

    def __init__(self, eligible: Callable[[], bool], times: CompositeTimes, label: str = "") -> None:
        self.eligible = eligible
        self.times = times
        self.label = label
        self.codec: str | None = None
        self.forwarded = 0
        self.switches = 0
        self._queue = KeyframeQueue()
        self._arrived = asyncio.Event()
        self._receiver: weakref.ref[RTCRtpReceiver] | None = None
        self._clock: CaptureClock | None = None
        self._arrivals: CaptureTimes | None = None
        self._ssrc: int | None = None
        self._wanted = False  # frames go to the queue (forwarding, or waiting for a keyframe)
        self.keyframe_needed = False  # frames were dropped: the agent's browser must be asked
        self._last_frame_at = 0.0
        self._last_packet_at = 0.0
        self._cap: float | None = None  # what the camera is capped at (REMB), None: not capped
        self._anchor: tuple[int, int] | None = None  # (the camera's RTP timestamp, its pts)
        self._last_pts = 0

    def follow(
        self, receiver: RTCRtpReceiver, codec: str, clock: CaptureClock, arrivals: CaptureTimes
    ) -> None:
        """Take the agent camera's frames from ``receiver`` (its marker jitter buffer hands them over);
        ``clock`` and ``arrivals`` say when each was captured and when its first packet came."""
        buffer = internals.jitter_buffer(receiver)
        if buffer is None or not hasattr(buffer, "on_frame"):
            return
        self._receiver = weakref.ref(receiver)
        self._ssrc = None  # a new peer (a reload): its SSRC comes with its first packet
        self._anchor = None  # ... and a timeline of its own
        self.codec, self._clock, self._arrivals = codec, clock, arrivals
        buffer.on_frame = self._on_frame
        internals.tap_received_rtp(receiver, self._note_ssrc)
        own = weakref.ref(self)
        internals.limit_sent_remb(receiver, lambda: (p := own()) and p._cap)

    def _note_ssrc(self, packet) -> None:
        receiver = self._receiver() if self._receiver is not None else None
        ssrc = internals.media_ssrc(receiver, packet) if receiver is not None else None
        if ssrc is not None:  # a retransmission's SSRC: PLIs sent there went unanswered
            self._ssrc = ssrc
            if packet.payload:  # the camera's media, not padding (a bandwidth probe)
                self._last_packet_at = time.monotonic()

    def _on_frame(self, frame: JitterFrame) -> None:
        now = self._last_frame_at = time.monotonic()
        if not self._wanted or self.codec is None:
            return
        packet = av.Packet(frame.data)
        packet.pts = self._pts(frame.timestamp, now)
        packet.time_base = VIDEO_TIME_BASE
        packet.is_keyframe = is_keyframe(self.codec, frame.data)
        captured = self._clock.capture_time(frame.timestamp) if self._clock is not None else None
        if captured is not None:
            self.times.capture_times.note(packet.pts, captured)
        arrived = self._arrivals(frame.timestamp) if self._arrivals is not None else None
        if arrived is not None:
            self.times.arrival_times.note(packet.pts, arrived)
        self.times.forwarded.note(packet.pts, now)
        if self._queue.put(packet, packet.is_keyframe):
            self.keyframe_needed = True
        else:
            self._arrived.set()

    def _pts(self, rtp_timestamp: int, now: float) -> int:
        """The frame's pts on the program's timeline (monotonic seconds x 90 kHz), spaced as the
        agent's browser stamped it (its capture times), anchored again when it strays from
        arrival by more than :data:`REANCHOR_S` (the first frame, a new source, a long stall)."""
        arrived = round(now * VIDEO_RATE)
        if self._anchor is not None:
            anchor_rtp, anchor_pts = self._anchor
            pts = anchor_pts + rtp_distance(rtp_timestamp, anchor_rtp)
            if abs(pts - arrived) <= REANCHOR_S * VIDEO_RATE and pts > self._last_pts:
                self._last_pts = pts
                return pts
            # The timeline ran ahead of arrival (its anchor frame came late): close the lead at
            # half the camera's own step, frames still apart (one tick each, Chromium showed them
            # as one), rather than all at once (the timeline never goes back).
            step = rtp_distance(rtp_timestamp, anchor_rtp) - (self._last_pts - anchor_pts)
            if arrived <= self._last_pts and 0 < step <= REANCHOR_S * VIDEO_RATE:
                arrived = self._last_pts + max(1, step // 2)
        pts = max(arrived, self._last_pts + 1)
        self._anchor, self._last_pts = (rtp_timestamp, pts), pts
        return pts

    @property
    def wanted(self) -> bool:
        """Whether the camera's frames are queued (forwarding, or waiting for its keyframe)."""
        return self._wanted

    @wanted.setter
    def wanted(self, wanted: bool) -> None:
        if not wanted:
            self._queue.restart()  # stale by the time they would be wanted again
            self.keyframe_needed = False
        self._wanted = wanted

    def fresh(self) -> bool:
        """Whether the camera sent a frame lately (a stalled camera leaves it to the composite).

        Packets coming while no frame does is a loss being repaired (a retransmission, a
        keyframe asked for): still fresh. The composite would show the camera's picture as
        it was at the last keyframe its decoder was fed, seconds old, while forwarding."""
        now = time.monotonic()
        return now - self._last_frame_at < STALL_S or (
            self._last_frame_at > 0 and now - self._last_packet_at < STALL_S
        )

    def take_keyframe(self) -> av.Packet | None:
        """The keyframe to start forwarding on (the queue starts with one), or None if none came yet."""
        return self._queue.get()

    async def next_frame(self, timeout: float) -> av.Packet | None:
        """The camera's next frame, or None if none came within ``timeout``."""
        packet = self._queue.get()
        if packet is None:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._arrived.wait()
            packet = self._queue.get()
        return packet

    def pause_decoding(self) -> None:
        """Feed the camera's decoder its keyframes only while its frames are forwarded: nothing
        draws them, but the compositor must see a new size (a browser changes it on a keyframe)
        to stop forwarding a camera grown larger than the composite."""
        buffer = self._buffer()
        if buffer is not None:
            codec = self.codec or ""
            buffer.decode_keyframes = lambda frame: is_keyframe(codec, frame.data)
            buffer.forward_only = True

    def resume_decoding(self) -> None:
        """Feed the decoder every frame again, from the camera's next keyframe (ask for it:
        :meth:`request_keyframe`)."""
        buffer = self._buffer()
        if buffer is not None and buffer.forward_only:
            codec = self.codec or ""
            buffer.decode_from = lambda frame: is_keyframe(codec, frame.data)
            buffer.forward_only = False
            buffer.decode_keyframes = None

    def _buffer(self):
        receiver = self._receiver() if self._receiver is not None else None
        return internals.jitter_buffer(receiver) if receiver is not None else None

    async def cap_upstream(self, bps: float) -> None:
        """Tell the agent's browser to send the camera at most at ``bps`` (REMB); the receiver's
        own estimates (of the agent's link) are held under it until the cap is lifted."""
        self._cap = None if bps >= UNCAPPED_BPS else bps
        receiver = self._receiver() if self._receiver is not None else None
        if receiver is not None and self._ssrc is not None:
            await internals.send_remb(receiver, int(min(bps, UNCAPPED_BPS)), [self._ssrc])

    async def request_keyframe(self) -> None:
        receiver = self._receiver() if self._receiver is not None else None
        if receiver is not None and self._ssrc is not None:
            await internals.send_pli(receiver, self._ssrc)
