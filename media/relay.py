"""One source track for any number of consumers, read only while someone consumes it.

aiortc's ``MediaRelay`` keeps reading its source once started, even after its last proxy
stopped: a rendered source (the avatar) then renders for nobody. :class:`OnDemandRelay`
starts its one reader when the first subscriber asks for a frame, cancels and awaits it
when the last subscriber's track stops, and starts it again for a later subscriber. Each
subscriber gets every frame through a size-one "newest wins" slot of its own, so a slow
subscriber skips frames instead of holding the others back or growing a queue.

A consumer that stops asking without stopping its track (a call's compositor drain, which
never ends its input) must not keep the source going either: once no subscriber has asked
for a frame within ``idle_s``, the reader parks (dropping the frames it left in slots) until
one asks again. Subscribers are held weakly: the relay keeps no track its consumers dropped.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

logger = logging.getLogger(__name__)

IDLE_S = 1.0  # far above any live consumer's gap between two asks (one frame time, an encode)


class OnDemandRelay:
    """Fans ``source``'s frames out to :meth:`subscribe`'s tracks while any of them is live."""

    def __init__(
        self,
        source: MediaStreamTrack,
        label: str = "relay",
        *,
        idle_s: float = IDLE_S,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.source = source
        self.label = label
        self.idle_s = idle_s
        self._clock = clock or asyncio.get_running_loop().time
        self.frames = 0  # frames read from the source, over every reading spell
        self._subscribers: weakref.WeakSet[RelayedTrack] = weakref.WeakSet()
        self._reader: asyncio.Task[None] | None = None
        # The reader cancelled when the last subscriber stopped (a sync call): awaited by the
        # next start or by close(), whichever comes first.
        self._stopping: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def reading(self) -> bool:
        """Whether the source is being read now."""
        return self._reader is not None and not self._reader.done()

    @property
    def subscribers(self) -> int:
        """Subscribers whose track is still live."""
        return len(self._subscribers)

    def subscribe(self) -> RelayedTrack:
        """A new track of the source's frames; stop it when done (or the source is read until
        it has gone ``idle_s`` unasked)."""
        track = RelayedTrack(self)
        if self._closed or self.source.readyState != "live":
            track.stop()
        else:
            self._subscribers.add(track)
        return track

    async def close(self) -> None:
        """End every subscriber and stop reading; idempotent."""
        self._closed = True
        for track in list(self._subscribers):
            track.stop()
        reader, self._reader = self._reader, None
        if reader is not None:  # the source ended, or its subscribers were dropped unstopped
            reader.cancel()
            await asyncio.wait({reader})
        await self._settle()

    # ---------------------------------------------------------------- internals

    async def _demand(self) -> None:
        """A subscriber wants a frame: make sure the reader runs."""
        await self._settle()
        if self._reader is None and self._subscribers and not self._closed:
            self._reader = asyncio.get_running_loop().create_task(self._read(), name=f"{self.label} reader")

    async def _settle(self) -> None:
        """Await the reader the last subscriber cancelled, if it has not finished yet."""
        stopping = self._stopping
        if stopping is not None:
            # asyncio.wait neither raises the task's CancelledError nor swallows our own.
            await asyncio.wait({stopping})
            if self._stopping is stopping:
                self._stopping = None

    def _unsubscribe(self, track: RelayedTrack) -> None:
        if track not in self._subscribers:
            return
        self._subscribers.discard(track)
        if not self._subscribers and self._reader is not None:
            reader, self._reader = self._reader, None
            reader.cancel()
            self._stopping = reader

    def _fan_out(self, frame: Any) -> bool:
        """Offer ``frame`` to every subscriber; whether any of them still asks for frames.

        A method of its own so that no subscriber stays referenced from the reader's frame
        while it awaits the source (the relay holds them weakly)."""
        subscribers = list(self._subscribers)
        for track in subscribers:
            track._offer(frame)
        now = self._clock()
        if any(track._asking(now, self.idle_s) for track in subscribers):
            return True
        for track in subscribers:
            track._drop_frame()  # kept for a consumer gone quiet: ~1.4 MB at 720p
        return False

    async def _read(self) -> None:
        try:
            while True:
                frame = await self.source.recv()
                self.frames += 1
                if not self._fan_out(frame):
                    # Live tracks nobody reads: park; the next recv() awaits us and starts afresh.
                    logger.info("%s: no subscriber asks, reading paused", self.label)
                    self._reader, self._stopping = None, self._reader
                    return
        except MediaStreamError:
            logger.info("%s: source ended", self.label)
        except Exception:  # not CancelledError: the last subscriber stopping cancels us
            # A broken source ends its subscribers (they see MediaStreamError), not their readers.
            logger.exception("%s: reading the source failed", self.label)
        # The source is done: so is every subscriber (the finished reader stays, for close()).
        ended, self._subscribers = list(self._subscribers), weakref.WeakSet()
        for track in ended:
            track.stop()


class RelayedTrack(MediaStreamTrack):
    """One subscriber's view of an :class:`OnDemandRelay`'s source."""

    def __init__(self, relay: OnDemandRelay) -> None:
        super().__init__()
        self.kind = relay.source.kind
        self._relay = relay
        self._slot: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
        self.skipped = 0  # frames replaced by a newer one before this subscriber read them
        self._in_recv = False
        self._asked_at = relay._clock()

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        self._in_recv = True
        try:
            await self._relay._demand()
            frame = await self._slot.get()
        finally:
            self._in_recv = False
            self._asked_at = self._relay._clock()
        if frame is None:  # stop() woke us
            raise MediaStreamError
        return frame

    @property
    def active(self) -> bool:
        """Live, and its consumer asks for frames (waits for one, or asked within ``idle_s``)."""
        return self.readyState == "live" and self._asking(self._relay._clock(), self._relay.idle_s)

    def _asking(self, now: float, idle_s: float) -> bool:
        """Whether this subscriber waits for a frame or asked for one within ``idle_s``."""
        return self._in_recv or now - self._asked_at < idle_s

    def _drop_frame(self) -> None:
        if self._slot.full():
            self._slot.get_nowait()

    def _offer(self, frame: Any) -> None:
        if self._slot.full():
            self._slot.get_nowait()
            self.skipped += 1
        self._slot.put_nowait(frame)

    def stop(self) -> None:
        if self.readyState == "ended":
            return
        super().stop()
        self._relay._unsubscribe(self)
        # Wake a recv() waiting on the slot: it raises MediaStreamError.
        if self._slot.full():
            self._slot.get_nowait()
        self._slot.put_nowait(None)
