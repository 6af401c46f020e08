"""The agent's own encoded frames to the customer, whenever the composite would be exactly them.

In the ``agent`` layout at the composite's own size, the composite IS the agent's camera:
decoding it, composing one tile and encoding it again only adds latency (the server's
share was 14-43 ms p50 in Chromium calls on 2 cores, most of it that decode and encode)
and CPU. :class:`CameraPassthrough` forwards the agent's frames as they came, in the same
outgoing stream: it starts on one of the agent's keyframes (asking for one) and hands back
to the composite with a keyframe of the server's encoder, so a layout change still never
renegotiates and never shows a broken picture. Any other layout, a cross-fade, a camera
at another size or a codec the two sides do not share keeps the composite. While the
camera is forwarded, the customer's bandwidth estimate caps the agent's sender (REMB).
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
import weakref
from collections.abc import Callable

import av
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media import aiortc_internals as internals
from media.capture_clock import CaptureClock, CaptureTimes, CompositeTimes

logger = logging.getLogger(__name__)

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
QUEUE_FRAMES = 3  # a sender that falls behind skips to a keyframe rather than queueing
STALL_S = 0.5  # no camera frame for this long: the composite (and its clock) takes over
UNCAPPED_BPS = 50_000_000  # a REMB this high lifts an earlier cap


def is_keyframe(codec: str, data: bytes) -> bool:
    """Whether an encoded frame (H.264 in Annex B, as aiortc depayloads it, or VP8) starts a picture."""
    if codec == "VP8":
        return bool(data) and not data[0] & 0x01  # the frame tag's P bit: 0 for a key frame
    start = 0
    while (start := data.find(b"\x00\x00\x01", start)) != -1 and start + 3 < len(data):
        if data[start + 3] & 0x1F == 5:  # an IDR slice
            return True
        start += 3
    return False


class CameraPassthrough:
    """Forwards the agent camera's encoded frames while ``eligible()`` says the composite is them.

    The room feeds it the camera's complete frames (:meth:`follow`) and gives the customer's
    sender a :meth:`track` in place of the composite.
    """

    def __init__(self, eligible: Callable[[], bool], times: CompositeTimes, label: str = "") -> None:
        self.eligible = eligible
        self.times = times
        self.label = label
        self.codec: str | None = None
        self.forwarded = 0
        self.switches = 0
        self._queue: asyncio.Queue[av.Packet] = asyncio.Queue(maxsize=QUEUE_FRAMES)
        self._receiver: weakref.ref[RTCRtpReceiver] | None = None
        self._clock: CaptureClock | None = None
        self._arrivals: CaptureTimes | None = None
        self._ssrc: int | None = None
        self._wanted = False  # frames go to the queue (forwarding, or waiting for a keyframe)
        self.keyframe_needed = False
        self._last_frame_at = 0.0

    def follow(
        self, receiver: RTCRtpReceiver, codec: str, clock: CaptureClock, arrivals: CaptureTimes
    ) -> None:
        """Take the agent camera's frames from ``receiver`` (its marker jitter buffer hands them over);
        ``clock`` and ``arrivals`` say when each was captured and when its first packet came."""
        buffer = internals.jitter_buffer(receiver)
        if buffer is None or not hasattr(buffer, "on_frame"):
            return
        self._receiver = weakref.ref(receiver)
        self.codec, self._clock, self._arrivals = codec, clock, arrivals
        buffer.on_frame = self._on_frame
        internals.tap_received_rtp(receiver, self._note_ssrc)

    def _note_ssrc(self, packet) -> None:
        self._ssrc = packet.ssrc

    def _on_frame(self, frame: JitterFrame) -> None:
        now = self._last_frame_at = time.monotonic()
        if not self._wanted or self.codec is None:
            return
        packet = av.Packet(frame.data)
        packet.pts = round(now * 90000)  # a timeline of its own, keyed for capture times
        packet.time_base = VIDEO_TIME_BASE
        packet.is_keyframe = is_keyframe(self.codec, frame.data)
        captured = self._clock.capture_time(frame.timestamp) if self._clock is not None else None
        if captured is not None:
            self.times.capture_times.note(packet.pts, captured)
        arrived = self._arrivals(frame.timestamp) if self._arrivals is not None else None
        if arrived is not None:
            self.times.arrival_times.note(packet.pts, arrived)
        if self._queue.full():
            self._queue.get_nowait()
            self.keyframe_needed = True  # a frame the customer's decoder needed is gone
        self._queue.put_nowait(packet)

    async def cap_upstream(self, bps: float) -> None:
        """Tell the agent's browser to send the camera at most at ``bps`` (REMB)."""
        receiver = self._receiver() if self._receiver is not None else None
        if receiver is not None and self._ssrc is not None:
            await internals.send_remb(receiver, int(min(bps, UNCAPPED_BPS)), [self._ssrc])

    async def request_keyframe(self) -> None:
        receiver = self._receiver() if self._receiver is not None else None
        if receiver is not None and self._ssrc is not None:
            await internals.send_pli(receiver, self._ssrc)

    def track(self, composite: MediaStreamTrack, sender: RTCRtpSender, codec: str) -> MediaStreamTrack:
        """The customer's outgoing video: ``composite``, or the camera's frames while they are it."""
        return _PassthroughTrack(self, composite, sender, codec)


class _PassthroughTrack(MediaStreamTrack):
    kind = "video"

    def __init__(
        self, passthrough: CameraPassthrough, composite: MediaStreamTrack, sender: RTCRtpSender, codec: str
    ) -> None:
        super().__init__()
        self.passthrough = passthrough
        self.composite = composite
        self.codec = codec
        self.forwarding = False
        self._sender = weakref.ref(sender)
        self._asked = 0.0
        self._pli_wrapped = False
        self._pli_due = False  # the customer lost a picture while we forward: ask the agent
        self._capped: float | None = None  # the estimate last passed on to the agent's browser
        self._capped_at = 0.0

    def _may_forward(self) -> bool:
        p = self.passthrough
        return p.codec == self.codec and time.monotonic() - p._last_frame_at < STALL_S and p.eligible()

    def _customer_estimate(self) -> float | None:
        """What the customer's browser says it can receive (its REMB, as our encoder took it)."""
        sender = self._sender()
        governor = getattr(internals.encoder(sender), "governor", None) if sender is not None else None
        return getattr(governor, "last_estimate", None)

    async def recv(self) -> av.VideoFrame | av.Packet:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        p = self.passthrough
        if self.forwarding:
            if self._may_forward():
                if self._pli_due or p.keyframe_needed:
                    self._pli_due = p.keyframe_needed = False
                    await p.request_keyframe()
                await self._pass_on_estimate()
                try:
                    async with asyncio.timeout(STALL_S):
                        packet = await p._queue.get()
                    p.forwarded += 1
                    return packet
                except TimeoutError:
                    pass
            await self._stop_forwarding()
        elif self._may_forward():
            p._wanted = True
            keyframe = self._take_keyframe()
            if keyframe is not None:
                self.forwarding = True
                p.switches += 1
                self._watch_customer_keyframe_requests()
                logger.info("%s: forwarding the agent's camera as it came", p.label)
                return keyframe
            if time.monotonic() - self._asked > 1.0:  # ask the agent's browser for a keyframe
                self._asked = time.monotonic()
                await p.request_keyframe()
        else:
            p._wanted = False
        return await self.composite.recv()

    async def _pass_on_estimate(self) -> None:
        """The agent's browser sends at its own link's rate; while its frames go to the customer
        as they are, the customer's estimate caps it (REMB upstream), as an SFU does."""
        estimate = self._customer_estimate()
        now = time.monotonic()
        if estimate is not None and (estimate != self._capped or now - self._capped_at > 1.0):
            self._capped, self._capped_at = estimate, now
            await self.passthrough.cap_upstream(estimate)

    def _take_keyframe(self) -> av.Packet | None:
        queue = self.passthrough._queue
        while not queue.empty():
            packet = queue.get_nowait()
            if packet.is_keyframe:
                return packet
        return None

    async def _stop_forwarding(self) -> None:
        self.forwarding = False
        if self._capped is not None:
            self._capped = None
            await self.passthrough.cap_upstream(UNCAPPED_BPS)  # the composite needs no cap on the camera
        self.passthrough._wanted = False
        sender = self._sender()
        if sender is not None:
            internals.force_keyframe(sender)  # the composite resumes on a keyframe
        logger.info("%s: back to the composite", self.passthrough.label)

    def _watch_customer_keyframe_requests(self) -> None:
        """While forwarding, the customer's picture-loss reports go to the agent's browser."""
        sender = self._sender()
        if sender is None or self._pli_wrapped:
            return
        self._pli_wrapped = True
        own = weakref.ref(self)

        def wrap(send_keyframe):
            def send_keyframe_or_ask_upstream() -> None:
                track = own()
                if track is not None and track.forwarding:
                    track._pli_due = True  # sent with the next frame the track hands over
                send_keyframe()

            return send_keyframe_or_ask_upstream

        internals.wrap_keyframe_request(sender, wrap)

    def stop(self) -> None:
        super().stop()
        self.composite.stop()
