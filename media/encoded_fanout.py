"""One received video stream's encoded frames to any number of senders, never decoded.

What a forwarding unit does for one publisher and several subscribers: an agent's WHIP
camera goes, as it came, to the room of each of the agent's calls. The receiver's marker
jitter buffer hands each complete frame here (and nothing to its decoder); every output
gets the same ``av.Packet`` in a short queue of its own (media.encoded.KeyframeQueue), which
starts on a keyframe and, for an output that falls behind, skips to the next one. Whatever
an output needs a keyframe for (its start, frames it skipped, its receiver's PLI or FIR)
becomes one PLI to the publisher, at most every :data:`~media.encoded.KEYFRAME_ASK_S`.
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
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket

from media import aiortc_internals as internals
from media.encoded import (
    KEYFRAME_ASK_S,
    QUEUE_FRAMES,
    VIDEO_RATE,
    VIDEO_TIME_BASE,
    PacketQueueTrack,
    is_keyframe,
    keyframe_requests_to,
)

logger = logging.getLogger(__name__)


class EncodedFanout:
    """``receiver``'s frames (negotiated ``codec``: "VP8" or "H264") for any number of outputs."""

    def __init__(self, receiver: RTCRtpReceiver, codec: str, label: str = "fan-out") -> None:
        if codec not in ("VP8", "H264"):
            raise ValueError(f"cannot tell keyframes of {codec!r} apart")
        self.codec = codec
        self.label = label
        self.frames = 0
        self._receiver = weakref.ref(receiver)
        self._outputs: weakref.WeakSet[PacketQueueTrack] = weakref.WeakSet()
        self._ssrc: int | None = None
        self._asked_at = 0.0
        self._asking: asyncio.Task[None] | None = None
        buffer = internals.jitter_buffer(receiver)
        if buffer is None or not hasattr(buffer, "on_frame"):
            raise ValueError("the receiver has no marker jitter buffer (media.receive)")
        buffer.on_frame = self._on_frame
        buffer.forward_only = True  # nothing here draws it: its decoder is never fed
        self._untap = internals.tap_received_rtp(receiver, self._note_ssrc)

    def output(self, sender: RTCRtpSender) -> MediaStreamTrack:
        """A track of these frames for ``sender`` (negotiated with this codec); its keyframe
        requests reach the publisher."""
        output = PacketQueueTrack(QUEUE_FRAMES)
        self._outputs.add(output)
        keyframe_requests_to(sender, self.request_keyframe)
        self.request_keyframe()
        return output

    @property
    def outputs(self) -> int:
        return sum(1 for output in self._outputs if output.readyState == "live")

    def _note_ssrc(self, packet: RtpPacket) -> None:
        receiver = self._receiver()
        ssrc = internals.media_ssrc(receiver, packet) if receiver is not None else None
        # None: a retransmission's SSRC, which ignores PLIs (media.passthrough skips it too).
        if ssrc is not None:
            self._ssrc = ssrc

    def _on_frame(self, frame: JitterFrame) -> None:
        self.frames += 1
        packet = av.Packet(frame.data)
        packet.pts = round(time.monotonic() * VIDEO_RATE)  # one timeline, whatever the publisher's
        packet.time_base = VIDEO_TIME_BASE
        packet.is_keyframe = is_keyframe(self.codec, frame.data)
        wanted = False
        for output in list(self._outputs):
            if output.readyState == "live":
                wanted |= output.offer(packet)
        if wanted:
            self.request_keyframe()

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe (a PLI), unless one was asked for just now."""
        now = time.monotonic()
        receiver = self._receiver()
        if receiver is None or self._ssrc is None or now - self._asked_at < KEYFRAME_ASK_S:
            return
        if self._asking is not None and not self._asking.done():
            return
        self._asked_at = now
        self._asking = asyncio.get_running_loop().create_task(
            internals.send_pli(receiver, self._ssrc), name=f"{self.label} PLI"
        )

    async def close(self) -> None:
        """Stop taking frames; end every output."""
        self._untap()
        receiver = self._receiver()
        buffer = internals.jitter_buffer(receiver) if receiver is not None else None
        if buffer is not None and getattr(buffer, "on_frame", None) == self._on_frame:
            buffer.on_frame = None
        for output in list(self._outputs):
            output.stop()
        if self._asking is not None:
            self._asking.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._asking
