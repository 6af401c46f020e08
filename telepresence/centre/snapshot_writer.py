"""When the leader writes a snapshot, and how: in a forked child, off the step path.

Every few seconds (or steps) the centre's state is pickled (:mod:`~telepresence.centre.snapshot`)
so that a new leader replays only the steps since. At 10,000 waiting that is 4 MB and
150-350 ms of one core: done in the leader's loop, every message arriving meanwhile waited
for it. Here a :class:`~telepresence.centre.snapshot_child.SnapshotChild` pickles the state
as it was at a step's end while the leader goes on stepping, and the first step after the
child is done commits it. What it holds is named by the inbox entry and the step it was
taken after, and the streams are trimmed only up to those: the steps committed while the
child ran stay for a successor to replay, so nothing is lost or applied twice. A child that
cannot be forked or fails leaves the snapshot to be pickled in the leader, as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis

from telepresence.centre import keys
from telepresence.centre.lease import LeaseLost
from telepresence.centre.snapshot_child import SnapshotChild

logger = logging.getLogger(__name__)

# Bounds a successor's replay.
SNAPSHOT_EVERY_S = 10.0
SNAPSHOT_EVERY_STEPS = 2000
CHILD_POLL_S = 0.05  # while a child runs, the leader steps at least this often to commit it soon

_COMMIT_SNAPSHOT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
if ARGV[3] ~= '0-0' then redis.call('XTRIM', KEYS[3], 'MINID', ARGV[3]) end
if ARGV[4] ~= '0-0' then redis.call('XTRIM', KEYS[4], 'MINID', ARGV[4]) end
return 1
"""

Capture = Callable[[str, str], bytes]  # (applied, step) -> the pickled state


class SnapshotWriter:
    """One leader term's snapshots. ``steps`` counts the steps committed since the last one."""

    def __init__(self, redis: Redis, holder: str, capture: Capture) -> None:
        self._holder = holder
        self._capture = capture
        self._commit = redis.register_script(_COMMIT_SNAPSHOT)
        self.steps = 0
        self._taken_at = 0.0
        self._child: SnapshotChild | None = None
        self._child_holds = ("0-0", "0-0", 0, 0.0)  # the child's applied, step, steps, taken at

    def poll_s(self) -> float:
        """How long a step may wait for the inbox before it must look at the child again."""
        return CHILD_POLL_S if self._child is not None else float("inf")

    async def when_due(self, now: float, *, applied: str, step: str) -> None:
        """At the end of a step: commit a finished child, or start one if a snapshot is due."""
        child = self._child
        if child is not None:
            if child.ready:
                self._child = None
                await self._commit_child(child, applied=applied, step=step)
            return
        if not self.steps or (now - self._taken_at < SNAPSHOT_EVERY_S and self.steps < SNAPSHOT_EVERY_STEPS):
            return
        try:
            self._child = SnapshotChild(lambda: self._capture(applied, step))
        except OSError as exc:  # no fork here (or no memory for one)
            logger.warning("could not fork a snapshot child (%s): the snapshot is taken in the leader", exc)
            await self.write_now(applied=applied, step=step)
            return
        self._child_holds = (applied, step, self.steps, now)

    async def write_now(self, *, applied: str, step: str) -> None:
        """A snapshot of the state as it is now, pickled in the leader (a term's start)."""
        await self._store(self._capture(applied, step), applied=applied, step=step)
        self._taken_at = time.time()
        self.steps = 0

    def close(self) -> None:
        """The term is over: a child still pickling is killed. Safe to call twice."""
        if self._child is not None:
            self._child.close()
            self._child = None

    async def _commit_child(self, child: SnapshotChild, *, applied: str, step: str) -> None:
        """The child's snapshot (of the state after its own step); if it failed, one of the
        state as it is now (``applied``, ``step``), pickled in the leader."""
        try:
            data = child.take()
        except RuntimeError as exc:
            logger.warning("a snapshot child failed (%s): the snapshot is taken in the leader", exc)
            await self.write_now(applied=applied, step=step)
            return
        child_applied, child_step, steps, taken_at = self._child_holds
        await self._store(data, applied=child_applied, step=child_step)
        self._taken_at = taken_at
        self.steps -= steps  # those committed while the child ran are not in it

    async def _store(self, data: bytes, *, applied: str, step: str) -> None:
        """The snapshot, and the streams trimmed to what it holds, only while the lease is ours."""
        stored = await self._commit(
            keys=[keys.LEADER, keys.SNAPSHOT, keys.STEPS, keys.INBOX],
            args=[self._holder, data, step, applied],
        )
        if not stored:
            raise LeaseLost("the lease was lost before a snapshot")
