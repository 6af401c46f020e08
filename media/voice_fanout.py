"""One speaker's voice to any number of listeners, as it came: the avatar host's voice to its viewers.

:class:`~media.voice.VoiceRelay` forwards one speaker's Opus packets to one listener and keeps
the listener's timeline continuous when the speaker comes back on a new peer. A show has many
listeners: :class:`VoiceFanout` keeps that timeline once and hands the same packet to every
listener's own short queue (a listener that falls behind loses its oldest packets, never
anyone else's). Nothing is decoded for the listeners; the speaker's receiver may go on
decoding for someone else (the avatar's mouth follows the operator's voice).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from typing import Protocol

import av
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.encoded import WAKE_CHECK_S
from media.voice import QUEUE_PACKETS, DirectVoice, VoiceRelay


class VoiceFanout(VoiceRelay):
    """A :class:`VoiceRelay` whose every :meth:`output` is a listener of its own."""

    def __init__(self, label: str = "voice fan-out") -> None:
        super().__init__(label)
        self._listeners: weakref.WeakSet[_Listener] = weakref.WeakSet()

    def output(self, sender: RTCRtpSender | None = None) -> MediaStreamTrack:
        return self._add_listener(sender)

    def _add_listener(self, sender: RTCRtpSender | None) -> _Listener:
        listener = _Listener()
        if sender is not None:
            listener.direct = DirectVoice(sender)
        self._listeners.add(listener)
        return listener

    @property
    def listeners(self) -> int:
        return sum(1 for listener in self._listeners if listener.readyState == "live")

    def _deliver(self, out: av.Packet) -> None:
        self.relayed += 1
        for listener in list(self._listeners):
            if listener.readyState == "live":
                self.dropped += listener.put(out)

    def close(self) -> None:
        """Stop forwarding and end every listener's track."""
        self.detach()
        for listener in list(self._listeners):
            listener.stop()


class PacketSink(Protocol):
    """Sends a packet on a listener's sender now (media.voice.DirectVoice)."""

    @property
    def ready(self) -> bool: ...

    def send(self, packet: av.Packet) -> bool: ...


class _Listener(MediaStreamTrack):
    """One listener's outgoing voice: the newest :data:`QUEUE_PACKETS` packets."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: deque[av.Packet] = deque(maxlen=QUEUE_PACKETS)
        self._arrived = asyncio.Event()
        # Sends a packet on the listener's sender now (False: it could not; the queue carries it).
        self.direct: PacketSink | None = None

    def put(self, packet: av.Packet) -> int:
        """Send or queue ``packet``; 1 if the oldest waiting packet was dropped for it, else 0."""
        if self.direct is not None and self.direct.send(packet):
            return 0
        dropped = int(len(self._queue) == self._queue.maxlen)
        self._queue.append(packet)
        self._arrived.set()
        return dropped

    async def recv(self) -> av.Packet:  # type: ignore[override]
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if self._queue:
                return self._queue.popleft()
            self._arrived.clear()
            try:
                async with asyncio.timeout(WAKE_CHECK_S):
                    await self._arrived.wait()
            except TimeoutError:
                pass
