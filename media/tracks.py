"""Input slots and the drains that fill them.

Every remote track gets a :class:`TrackDrain`: a task that reads frames as fast
as aiortc delivers them and puts each into a :class:`FrameSlot`, which keeps
only the newest. aiortc's receive queues are unbounded, so a track nobody reads
(or a reader that waits on anything else) accumulates latency without limit;
draining into a size-one slot turns "behind" into "dropped and counted".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SlotFrame:
    """A frame as the slot holds it: the frame, its sequence number and its arrival time."""

    frame: av.VideoFrame
    version: int
    arrived: float


class FrameSlot:
    """The newest frame of one input; older unread frames are dropped and counted.

    ``put`` never blocks and never fails. Readers look at :attr:`latest` as often
    as they like (a frozen input keeps showing its last picture); :meth:`mark_read`
    tells the slot a frame was used, so a frame replaced before it was ever used
    counts as dropped. :meth:`wait_newer` lets one consumer wake on new frames.

    Args:
        name: the input's name (``"agent"``, ``"screen"``, ...), for logs.
        hide_when_ended: once the input ends, report it absent (its tile is
            hidden) rather than frozen on its last frame.
        clock: monotonic seconds, injectable for tests.
    """

    def __init__(
        self, name: str, *, hide_when_ended: bool = False, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.hide_when_ended = hide_when_ended
        self._clock = clock
        self._latest: SlotFrame | None = None
        self._read_version = 0
        self._version = 0
        self._changed = asyncio.Event()
        self.dropped = 0
        self.ended = False

    @property
    def latest(self) -> SlotFrame | None:
        """The newest frame, or ``None`` before the first one (or after :meth:`clear`)."""
        return self._latest

    @property
    def version(self) -> int:
        """Increases by one with every frame put; 0 before the first."""
        return self._version

    @property
    def received(self) -> int:
        """Frames put so far (read or dropped): the same count as :attr:`version`."""
        return self._version

    @property
    def present(self) -> bool:
        """Whether the input has a picture to show."""
        return self._latest is not None and not (self.ended and self.hide_when_ended)

    def put(self, frame: av.VideoFrame) -> None:
        """Offer a new frame; the previous one is dropped if it was never read."""
        if self._latest is not None and self._read_version < self._version:
            self.dropped += 1
        self._version += 1
        self._latest = SlotFrame(frame, self._version, self._clock())
        self.ended = False
        self._notify()

    def _notify(self) -> None:
        # A fresh event per change: every waiter holds the event it started on, so any
        # number of consumers wake, and none has to clear an event another is waiting on.
        self._changed.set()
        self._changed = asyncio.Event()

    def mark_read(self, version: int) -> None:
        """Record that the frame with ``version`` was used (composed, forwarded)."""
        self._read_version = max(self._read_version, version)

    def end(self) -> None:
        """The input ended: keep the last picture (frozen) unless ``hide_when_ended``."""
        self.ended = True
        self._notify()

    def clear(self) -> None:
        """Forget the picture (a camera turned off): the input is absent until its next frame."""
        self._latest = None
        self._notify()

    async def wait_newer(self, version: int, timeout: float | None) -> bool:  # noqa: ASYNC109 - a poll with a deadline is the API
        """Wait until a frame newer than ``version`` is in the slot (or it changes state).

        Returns whether a newer frame is there. Any number of consumers may wait.
        """
        if self._version > version:
            return True
        changed = self._changed
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
        # races the event, and a reader that cannot be cancelled hangs its owner's stop().
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await changed.wait()
        return self._version > version


class TrackDrain:
    """Reads one track into one slot until the track ends or :meth:`stop` is called.

    The drain owns its task. ``MediaStreamError`` (the track ended) ends the slot's
    input, which freezes or hides only that tile; any other error is logged and
    does the same, so a track sending garbage never takes the output down.

    Args:
        track: an aiortc video track (remote or local).
        slot: where the frames go.
        label: a tag for log lines (the call or peer id).
    """

    def __init__(self, track: MediaStreamTrack, slot: FrameSlot, *, label: str = "") -> None:
        self.track = track
        self.slot = slot
        self.label = label or slot.name
        self._task: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(
            self._run(), name=f"drain {self.label}"
        )

    @property
    def running(self) -> bool:
        """Whether the drain task is still reading."""
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        try:
            while True:
                frame = await self.track.recv()
                if isinstance(frame, av.VideoFrame):
                    self.slot.put(frame)
        except MediaStreamError:
            logger.info("%s: track ended", self.label)
        except Exception:  # not CancelledError (a BaseException): stop() still cancels
            # A broken input ends its own tile, never the compositor or the call.
            logger.exception("%s: drain failed, input ended", self.label)
        finally:
            self.slot.end()

    async def stop(self) -> None:
        """Cancel the task and wait for it; safe to call more than once."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        # asyncio.wait neither raises the task's CancelledError nor swallows our own.
        await asyncio.wait({task})
