"""One source track for any number of consumers, read only while someone consumes it.

aiortc's ``MediaRelay`` keeps reading its source once started, even after its last proxy
stopped: a rendered source (the avatar) then renders for nobody. :class:`OnDemandRelay`
starts its one reader when the first subscriber asks for a frame, cancels and awaits it
when the last subscriber's track stops, and starts it again for a later subscriber. Each
subscriber gets every frame through a size-one "newest wins" slot of its own, so a slow
subscriber skips frames instead of holding the others back or growing a queue.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

logger = logging.getLogger(__name__)


class OnDemandRelay:
    """Fans ``source``'s frames out to :meth:`subscribe`'s tracks while any of them is live."""

    def __init__(self, source: MediaStreamTrack, label: str = "relay") -> None:
        self.source = source
        self.label = label
        self.frames = 0  # frames read from the source, over every reading spell
        self._subscribers: set[RelayedTrack] = set()
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
        """A new track of the source's frames; stop it when done, or the source keeps being read."""
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
        if reader is not None:  # the source ended: the reader finished by itself
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
        self._subscribers.remove(track)
        if not self._subscribers and self._reader is not None:
            reader, self._reader = self._reader, None
            reader.cancel()
            self._stopping = reader

    async def _read(self) -> None:
        try:
            while True:
                frame = await self.source.recv()
                self.frames += 1
                for track in list(self._subscribers):
                    track._offer(frame)
        except MediaStreamError:
            logger.info("%s: source ended", self.label)
        except Exception:  # not CancelledError: the last subscriber stopping cancels us
            # A broken source ends its subscribers (they see MediaStreamError), not their readers.
            logger.exception("%s: reading the source failed", self.label)
        # The source is done: so is every subscriber (the finished reader stays, for close()).
        ended, self._subscribers = self._subscribers, set()
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

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        await self._relay._demand()
        frame = await self._slot.get()
        if frame is None:  # stop() woke us
            raise MediaStreamError
        return frame

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
