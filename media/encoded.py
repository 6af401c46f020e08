"""Encoded frames passed on as they are: telling keyframes apart, and queueing them safely.

A stream forwarded without decoding (media.forward, media.passthrough) or encoded once for
several viewers (media.program) must reach each receiving decoder from a keyframe, never a
delta frame whose references it lacks (a decoder fed one shows garbage, or black), and a
receiver that falls behind must skip to the next keyframe rather than queue. These rules
live here once; the modules above add only where their frames come from.
"""

from __future__ import annotations

import asyncio
import fractions
import weakref
from collections import deque
from collections.abc import Callable

import av
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media import aiortc_internals as internals

VIDEO_RATE = 90000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_RATE)
# A receiver this far behind skips to the next keyframe. Not fewer: a repaired loss releases the
# frames held behind it at once (up to media.receive's 0.35 s gap timeout, ~11 at 30 fps), and a
# queue that overflowed on them waited a round trip and a keyframe more (a 0.5-1.7 s freeze).
QUEUE_FRAMES = 12
UNCAPPED_BPS = 50_000_000  # a REMB this high lifts an earlier cap on a sender
KEYFRAME_ASK_S = 0.3  # a source is asked for a keyframe at most this often
WAKE_CHECK_S = 0.5  # a queue track with nothing to send looks again this often whether it still lives


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


def keyframe_requests_to(sender: RTCRtpSender, ask: Callable[[], None]) -> None:
    """``sender``'s keyframe requests (its receiver's PLI or FIR) call ``ask`` instead of reaching
    its encoder, which only packetises frames made elsewhere. ``ask``, a bound method, is held
    weakly: a sender must not keep what feeds it alive."""
    method = weakref.WeakMethod(ask)  # type: ignore[arg-type]

    def wrap(send_keyframe: Callable[[], None]) -> Callable[[], None]:
        def ask_the_source() -> None:
            bound = method()
            if bound is not None:
                bound()

        return ask_the_source

    internals.wrap_keyframe_request(sender, wrap)


class KeyframeQueue:
    """Encoded frames waiting for a sender, at most ``size``; it starts on a keyframe and, when the
    sender falls behind, drops what waits and skips to the next keyframe (which it asks for).

    Pure (no clock, no I/O): :meth:`put` says when to ask the source for a keyframe.
    """

    def __init__(self, size: int = QUEUE_FRAMES) -> None:
        self.size = size
        self.skipped = 0  # frames not passed on: before a keyframe, or for a sender behind
        self.waiting = True  # for a keyframe: a decoder fed a delta frame first shows garbage
        self._frames: deque[av.Packet] = deque()

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, packet: av.Packet, keyframe: bool) -> bool:
        """Queue ``packet`` if it may go out; True if the source should be asked for a keyframe."""
        if keyframe:
            self.skipped += len(self._frames)  # stale: the keyframe does not need them
            self._frames.clear()
            self.waiting = False
        elif self.waiting:
            self.skipped += 1
            return True
        elif len(self._frames) >= self.size:
            # The next delta frames need the ones dropped now: wait for a keyframe, not a queue.
            self.restart()
            self.skipped += 1
            return True
        self._frames.append(packet)
        return False

    def get(self) -> av.Packet | None:
        return self._frames.popleft() if self._frames else None

    def restart(self) -> None:
        """Drop what waits; pass nothing on before the next keyframe (a new source, a new mode)."""
        self.skipped += len(self._frames)
        self._frames.clear()
        self.waiting = True


class PacketQueueTrack(MediaStreamTrack):
    """A video track whose frames are encoded packets put in a :class:`KeyframeQueue` by
    :meth:`offer`: one sender's share of something encoded once or forwarded as it came."""

    kind = "video"

    def __init__(self, size: int) -> None:
        super().__init__()
        self.queue = KeyframeQueue(size)
        self._arrived = asyncio.Event()

    def offer(self, packet: av.Packet) -> bool:
        """Queue ``packet``; True if the source should be asked for a keyframe."""
        needs_keyframe = self.queue.put(packet, packet.is_keyframe)
        if not needs_keyframe:
            self._arrived.set()
        return needs_keyframe

    async def recv(self) -> av.Packet:  # type: ignore[override]
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            packet = self.queue.get()
            if packet is not None:
                return packet
            self._arrived.clear()
            # No timeout: stop() wakes it (a timer armed and cancelled a frame a viewer was
            # ~7 % of a 50-viewer program's CPU).
            await self._arrived.wait()

    def stop(self) -> None:
        super().stop()
        self._arrived.set()  # a recv() waiting sees the end at once
