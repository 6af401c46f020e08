"""A stream one peer sends, forwarded to another as the encoded frames it came in.

A call shows the customer's camera and screen on the agent's console; the server only
passes them on. :class:`EncodedForward` takes the source receiver's complete frames from
its :class:`~media.peers.MarkerJitterBuffer` (which then hands nothing to the decoder: the
server decodes only what the compositor draws) and gives them to the agent's sender as
``av.Packet`` objects, which aiortc packetizes without encoding. As a forwarding unit does:

- the outgoing stream starts on a keyframe, never a delta frame (a decoder fed a delta
  first shows garbage), and asks the source for one (RTCP PLI) when it needs it: when
  forwarding starts, when the source changes, when the agent's browser asks (its PLI or
  FIR reaches the server's sender), when frames had to be skipped;
- at most :data:`media.encoded.QUEUE_FRAMES` frames wait for a sender that fell behind: it skips to the
  next keyframe (asking for one) rather than queueing, so it never adds latency;
- the source may come late (the customer negotiates after the agent), go away (a reload
  is a new peer with a new SSRC) and come back: the outgoing track keeps running, on one
  timeline, and resumes on the new source's first keyframe;
- where the two sides share no codec (the customer sends VP8, the agent's section
  settled on H.264) it falls back to decoding into a :class:`~media.tracks.FrameSlot` and
  encoding again (:class:`SlotTrack`), and says so in the log;
- the agent's estimate (its REMB, as the sender's encoder took it) caps the source's
  sender (REMB upstream), so the customer does not send more than the agent can take.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref

import av
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from media import aiortc_internals as internals
from media.encoded import (
    KEYFRAME_ASK_S,
    UNCAPPED_BPS,
    VIDEO_RATE,
    VIDEO_TIME_BASE,
    KeyframeQueue,
    is_keyframe,
)
from media.peers import MarkerJitterBuffer
from media.tracks import FrameSlot, TrackDrain

logger = logging.getLogger(__name__)

# The test peers' microphone format (media.browser): 20 ms frames at 48 kHz, as Opus sends.
AUDIO_RATE = 48000
AUDIO_PTIME = 0.020
AUDIO_SAMPLES = int(AUDIO_RATE * AUDIO_PTIME)

IDLE_WAIT_S = 0.1  # how often a track with nothing to send looks again (a mode change, a stop)
ESTIMATE_EVERY_S = 1.0  # the agent's estimate goes upstream when it changes, or this often


class SlotTrack(MediaStreamTrack):
    """A video track that sends a slot's newest frame whenever the slot has a new one.

    A slow sender skips frames instead of queueing them. The room sends no sender reports
    of the composite's clock on these tracks (they carry another peer's pictures).
    """

    kind = "video"

    def __init__(self, slot: FrameSlot) -> None:
        super().__init__()
        self.slot = slot
        self._version = 0

    def _take(self) -> av.VideoFrame | None:
        latest = self.slot.latest
        if latest is None or latest.version <= self._version:
            return None
        self._version = latest.version
        self.slot.mark_read(latest.version)
        return latest.frame

    async def recv(self) -> av.VideoFrame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            frame = self._take()
            if frame is not None:
                return frame
            await self.slot.wait_newer(self._version, timeout=0.5)


class EncodedForward:
    """One stream from a source receiver to whichever sender :meth:`output` last made a track for.

    Args:
        name: the stream's name (``"customer_camera"``), also its fallback slot's.
        label: a tag for log lines (the call id and the name).
    """

    def __init__(self, name: str, label: str = "") -> None:
        self.name = name
        self.label = label or name
        self.slot = FrameSlot(name, hide_when_ended=True)  # the fallback's decoded frames
        self.source_codec: str | None = None
        self.forwarded = 0  # frames handed to a sender as they came
        self.keyframe_requests = 0  # PLIs sent to the source
        self.fallbacks = 0  # times the stream had to be decoded and encoded again
        self._receiver: weakref.ref[RTCRtpReceiver] | None = None
        self._ssrc: int | None = None
        self._undo: list = []
        self._drain: TrackDrain | None = None
        self._output: weakref.ref[ForwardTrack] | None = None

    async def attach(self, receiver: RTCRtpReceiver, codec: str) -> None:
        """Forward ``receiver``'s stream (in ``codec``) from now on, replacing any earlier source."""
        await self.detach()
        buffer = _marker_buffer(receiver)
        if buffer is None:
            raise ValueError(f"{self.label}: the receiver does not complete frames (no MarkerJitterBuffer)")
        self._receiver = weakref.ref(receiver)
        self.source_codec = codec
        self._ssrc = None
        buffer.on_frame = self._on_frame
        self._undo = [internals.tap_received_rtp(receiver, self._note_ssrc)]
        self._apply()

    async def detach(self) -> None:
        """The source went away: the output shows nothing new until the next :meth:`attach`."""
        receiver = self._receiver() if self._receiver is not None else None
        buffer = _marker_buffer(receiver)
        if buffer is not None and buffer.on_frame == self._on_frame:
            buffer.on_frame = None
        for undo in self._undo:
            undo()
        self._undo = []
        self._receiver = None
        self.source_codec = None
        drain, self._drain = self._drain, None
        if drain is not None:
            await drain.stop()
        output = self._current_output()
        if output is not None:
            output._restart()

    async def close(self) -> None:
        """Detach the source and forget the last picture. The output track is its sender's to stop."""
        await self.detach()
        self.slot.clear()

    def output(self, sender: RTCRtpSender, codec: str) -> ForwardTrack:
        """A new outgoing track for ``sender``, whose section settled on ``codec`` (one per agent peer)."""
        previous = self._current_output()
        if previous is not None:
            previous.stop()
        track = ForwardTrack(self, sender, codec)
        self._output = weakref.ref(track)
        self._apply()
        return track

    @property
    def mode(self) -> str | None:
        """``"forward"`` (as encoded), ``"decode"`` (the fallback) or None (no source, or no output)."""
        output = self._current_output()
        if self.source_codec is None or output is None:
            return None
        return "forward" if output.codec == self.source_codec else "decode"

    def _current_output(self) -> ForwardTrack | None:
        output = self._output() if self._output is not None else None
        return output if output is not None and output.readyState == "live" else None

    def _apply(self) -> None:
        """Decode the source only where the output cannot take its frames as they are."""
        receiver = self._receiver() if self._receiver is not None else None
        buffer = _marker_buffer(receiver)
        if receiver is None or buffer is None:
            return
        output = self._current_output()
        decode = self.mode == "decode"
        if decode and buffer.forward_only:
            codec = self.source_codec or ""
            buffer.decode_from = lambda frame: is_keyframe(codec, frame.data)  # (asked for below)
        buffer.forward_only = not decode  # no output, nothing to decode for
        if decode and self._drain is None and receiver.track is not None and output is not None:
            self.fallbacks += 1
            logger.info(
                "%s: the source sends %s, the receiving side takes %s: decoding and encoding it again",
                self.label,
                self.source_codec,
                output.codec,
            )
            self._drain = TrackDrain(receiver.track, self.slot, label=self.label)
        if output is not None:
            output._restart()  # a keyframe to start on, for the forward or for the decoder

    def _note_ssrc(self, packet: RtpPacket) -> None:
        receiver = self._receiver() if self._receiver is not None else None
        ssrc = internals.media_ssrc(receiver, packet) if receiver is not None else None
        if ssrc is not None:  # a retransmission's SSRC: PLIs sent there went unanswered
            self._ssrc = ssrc

    def _on_frame(self, frame: JitterFrame) -> None:
        output = self._current_output()
        if output is not None and self.source_codec == output.codec:
            output._offer(frame, is_keyframe(output.codec, frame.data))

    @property
    def skipped(self) -> int:
        """Frames of the source not forwarded (before a keyframe, or for a sender behind)."""
        output = self._current_output()
        return output.queue.skipped if output is not None else 0

    async def request_keyframe(self) -> bool:
        """Ask the source's sender for a keyframe (RTCP PLI); False while there is no source to ask."""
        receiver = self._receiver() if self._receiver is not None else None
        if receiver is None or self._ssrc is None:
            return False
        self.keyframe_requests += 1
        await internals.send_pli(receiver, self._ssrc)
        return True

    async def cap_upstream(self, bps: float) -> None:
        """Tell the source's sender to send at most ``bps`` (REMB)."""
        receiver = self._receiver() if self._receiver is not None else None
        if receiver is not None and self._ssrc is not None:
            await internals.send_remb(receiver, int(min(bps, UNCAPPED_BPS)), [self._ssrc])


def _marker_buffer(receiver: RTCRtpReceiver | None) -> MarkerJitterBuffer | None:
    buffer = internals.jitter_buffer(receiver) if receiver is not None else None
    return buffer if isinstance(buffer, MarkerJitterBuffer) else None


class ForwardTrack(SlotTrack):
    """The outgoing side of an :class:`EncodedForward`: its source's frames as ``av.Packet`` objects,
    or, in the fallback, its slot's decoded frames (for the sender to encode)."""

    def __init__(self, forward: EncodedForward, sender: RTCRtpSender, codec: str) -> None:
        super().__init__(forward.slot)
        self.forward = forward
        self.codec = codec
        self._sender = weakref.ref(sender)
        self.queue = KeyframeQueue()
        self._pli_due = True
        self._asked_at = -1.0
        self._last_pts = -1
        self._capped: float | None = None
        self._capped_at = 0.0
        self._changed = asyncio.Event()
        self._watch_keyframe_requests(sender)

    # Called by the forward, on the event loop.

    def _offer(self, frame: JitterFrame, keyframe: bool) -> None:
        packet = av.Packet(frame.data)
        packet.pts = self._next_pts(time.monotonic())
        packet.time_base = VIDEO_TIME_BASE
        packet.is_keyframe = keyframe
        starting = keyframe and self.queue.waiting
        if self.queue.put(packet, keyframe):
            self._ask()
            return
        if starting:
            logger.info("%s: forwarding %s as it came, from a keyframe", self.forward.label, self.codec)
        self._poke()

    def _restart(self) -> None:
        """A new source, or a new mode: start again on a keyframe."""
        self.queue.restart()
        self._ask()

    def _ask(self) -> None:
        self._pli_due = True
        self._poke()

    def _poke(self) -> None:
        self._changed.set()

    def _next_pts(self, at: float) -> int:
        # One timeline, the server's clock at arrival, across sources and modes: a reload or a
        # fallback never moves the receiving browser's RTP clock back.
        self._last_pts = max(self._last_pts + 1, round(at * VIDEO_RATE))
        return self._last_pts

    # Called by the sender's task.

    async def recv(self) -> av.Packet | av.VideoFrame:  # type: ignore[override]
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            self._changed.clear()  # before looking: a poke from here on wakes the wait below
            mode = self.forward.mode
            if mode is not None:
                await self._ask_upstream(mode)
            if mode == "forward":
                packet = self.queue.get()
                if packet is not None:
                    self.forward.forwarded += 1
                    return packet
            elif mode == "decode":
                frame = self._take()
                if frame is not None:
                    latest = self.slot.latest
                    frame.pts = self._next_pts(latest.arrived if latest is not None else time.monotonic())
                    frame.time_base = VIDEO_TIME_BASE
                    return frame
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_WAIT_S):
                    if mode == "decode":
                        await self.slot.wait_newer(self._version, timeout=None)
                    else:
                        await self._changed.wait()

    async def _ask_upstream(self, mode: str) -> None:
        """A keyframe request due goes to the source (at most every KEYFRAME_ASK_S: one held back
        goes out on a later pass, recv looks every IDLE_WAIT_S); so does the agent's estimate,
        as a cap, while frames go through as they came."""
        now = time.monotonic()
        if self._pli_due and now - self._asked_at >= KEYFRAME_ASK_S:
            self._asked_at = now
            self._pli_due = not await self.forward.request_keyframe()  # no source yet: ask again later
        sender = self._sender()
        governor = getattr(internals.encoder(sender), "governor", None) if sender is not None else None
        estimate = getattr(governor, "last_estimate", None) if mode == "forward" else None
        if estimate is not None and (estimate != self._capped or now - self._capped_at > ESTIMATE_EVERY_S):
            self._capped, self._capped_at = estimate, now
            await self.forward.cap_upstream(estimate)
        elif estimate is None and self._capped is not None:
            self._capped = None
            await self.forward.cap_upstream(UNCAPPED_BPS)  # the fallback's encoder adapts on its own

    def _watch_keyframe_requests(self, sender: RTCRtpSender) -> None:
        """The agent's picture-loss reports (PLI, FIR) go to the source while frames pass through."""
        own = weakref.ref(self)

        def wrap(send_keyframe):
            def send_keyframe_or_ask_upstream() -> None:
                track = own()
                if track is not None and track.readyState == "live" and track.forward.mode == "forward":
                    track._ask()
                send_keyframe()  # the fallback's encoder (and nothing, while forwarding)

            return send_keyframe_or_ask_upstream

        internals.wrap_keyframe_request(sender, wrap)

    def stop(self) -> None:
        super().stop()
        self.queue.restart()
        self._poke()
        if self.forward._output is not None and self.forward._output() is self:
            self.forward._apply()  # no output: the source need not be decoded
