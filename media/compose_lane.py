"""The compositor's primary frame composed and encoded on its decoder's thread: one crossing, not three.

A camera frame used to cross threads three times on its way through the server: the decoder's
thread handed it to the event loop (which put it into the compositor's slot and composed), the
loop handed the composite to an executor thread to encode, and that thread handed the encoded
frame back (each a thread wake, 0.3 ms p50 on this 2-core VM; the issue 14 probe). When the
program's pump is only waiting for the primary's next frame, nothing else composes or encodes,
so the decoder's thread can do both itself and hand back the encoded frame: one crossing.

:class:`ComposeLane` is the meeting point. The pump :meth:`~ComposeLane.arm`\\ s it with the work
for the next frame (media.compositor ``recv_through``: put into the slot, compose, encode); the
decoder's thread :meth:`~ComposeLane.offer`\\ s each frame it decodes (media.aiortc_internals
``take_decoded``) while it keeps up (a decoder with frames waiting offers none: it must not fall
further behind). An armed lane takes the frame and runs the work there; a lane not armed (the
pump busy with a frame, the fallback clock composing, the camera forwarded as it came, another
input the primary) lets it go the usual way: the track, its drain, the slot. Arming and taking
are one lock's exchange, so a frame is taken at most once and only while the pump waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import av

if TYPE_CHECKING:
    from media.tracks import FrameSlot

Work = Callable[[av.VideoFrame], None]


class ComposeLane:
    """Where input ``name``'s decoder thread meets the program's pump (see the module's doc)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._work: Work | None = None
        self._busy = False  # a taken frame's work is running
        self._closed = False
        self.taken = 0  # frames whose work ran on the decoder's thread

    def arm(self, work: Work) -> None:
        """Run ``work`` with the next frame offered (on the offering thread), once."""
        with self._lock:
            self._work = work

    def disarm(self) -> bool:
        """Take the work back: True when no frame took it (it will not run), False when one did
        (it runs or ran on the decoder's thread, and says so itself)."""
        with self._lock:
            work, self._work = self._work, None
        return work is not None

    def offer(self, frame: av.VideoFrame) -> bool:
        """A decoded frame, on its decoder's thread: True when the armed work took it (and ran)."""
        with self._lock:
            if self._work is None or self._closed:
                return False  # (closed: the work stays, for the waiter's disarm to take back)
            work, self._work = self._work, None
            self._busy = True
        try:
            self.taken += 1
            work(frame)
        finally:
            self._busy = False
        return True

    async def close(self) -> None:
        """Take no frame from now on, and wait for a taken frame's work to end (its input is being
        detached: nothing of it may reach the slot after this returns)."""
        with self._lock:
            self._closed = True
        while self._busy:
            await asyncio.sleep(0.001)  # a compose and an encode: a few ms at most

    async def take_next(  # noqa: ASYNC109 - a poll with a deadline, as FrameSlot.wait_newer
        self, slot: FrameSlot, seen: int, timeout: float, run: Callable[[], Any]
    ) -> Any:
        """Wait up to ``timeout`` s for ``slot``'s next frame (newer than version ``seen``), armed:
        when the decoder's thread takes it, it puts it into ``slot`` and calls ``run()`` there, and
        this returns what ``run`` returned (raises what it raised). None when a frame came the
        usual way or none came in time: then nothing is armed or in flight."""
        loop = asyncio.get_running_loop()
        if slot.version > seen:
            return None
        done: asyncio.Future = loop.create_future()

        def work(decoded: av.VideoFrame) -> None:  # on the decoder's thread; never raises
            try:
                slot.put_from_thread(decoded, loop)
                outcome: tuple[Any, BaseException | None] = (run(), None)
            except Exception as exc:  # the waiter hears it, as from an executor
                outcome = (None, exc)
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                loop.call_soon_threadsafe(_settle, done, *outcome)

        self.arm(work)
        try:
            await slot.wait_newer(seen, timeout)  # woken by the taken frame's put, or the usual way's
            if self.disarm():
                return None  # not taken: a frame came the usual way, or none in time
            return await done  # taken: ``run`` runs or ran on the decoder's thread
        finally:
            self.disarm()  # cancelled: nothing stays armed for a waiter that is gone


def _settle(done: asyncio.Future, value: Any, error: BaseException | None) -> None:
    if done.done():
        return  # its waiter was cancelled
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(value)
