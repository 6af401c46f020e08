"""When the leader writes a snapshot: once replaying the steps since the last would cost a second.

The centre's state is pickled (:mod:`~telepresence.centre.snapshot`) so that a new leader
replays only the steps since; the streams are trimmed to what it holds. It is pickled in the
leader's loop, between two steps: at 10,000 waiting that is 4 MB and 90-200 ms of CPU (1.5 s
of wall time at load 9 on the two shared cores here), during which no message is applied.

A successor's replay applies the same entries again, so it costs about the CPU the leader
spent applying them: a snapshot is due when that reaches ``REPLAY_BUDGET_S`` (or after
``SNAPSHOT_EVERY_STEPS`` steps, the ``snapshot_every_steps`` setting, or
``SNAPSHOT_AT_LEAST_EVERY_S``). A new leader within 5 s is the lease's 3 s, loading the
snapshot (0.4-0.9 s at 10,000 waiting) and that replay. Until session 9 it was every 10 s
whatever the steps were: a quiet centre re-pickled 4 MB for a replay of milliseconds, and a
saturated one left up to 10 s of work to replay.

Tried and taken out (benchmarks/README.md, matchmaker, session 8): pickling in a forked
child (copy-on-write) while the steps went on. The leader then stalled only for the fork
(50-80 ms at load 9 for a 156 MB process), but the child paid ~2.5x the CPU (pickling
touches every object, so it copied most shared pages: 0.45 against 0.16 s) and the parent
page-faulted on every page it wrote while the child lived; on this 2-core machine the
fan-out to 3,000 sockets had worse tails in all five runs with it (p95 919-3,640 ms against
336-2,910 without, load 5-15).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis

from telepresence.centre import keys
from telepresence.centre.lease import LeaseLost

# Bound a successor's replay (CPU seconds of applying, counted on the leader's thread).
REPLAY_BUDGET_S = 1.0
SNAPSHOT_EVERY_STEPS = 2000
# With a trickle of steps the streams (their entries' bodies) are still trimmed this often.
SNAPSHOT_AT_LEAST_EVERY_S = 300.0
# The CPU budget over-counts on a busy node (while an entry's apply waits on Redis, the thread's
# other tasks run on its clock): it may call for a snapshot at most this often (the old period).
REPLAY_BUDGET_AT_MOST_EVERY_S = 10.0

_COMMIT_SNAPSHOT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
if ARGV[3] ~= '0-0' then redis.call('XTRIM', KEYS[3], 'MINID', ARGV[3]) end
if ARGV[4] ~= '0-0' then redis.call('XTRIM', KEYS[4], 'MINID', ARGV[4]) end
return 1
"""

Capture = Callable[[str, str], bytes]  # (applied, step) -> the pickled state


class SnapshotWriter:
    """One leader term's snapshots. ``steps`` counts the steps committed since the last one,
    ``replay_s`` the CPU seconds their applying took (what a successor would replay)."""

    def __init__(
        self, redis: Redis, holder: str, capture: Capture, every_steps: int = SNAPSHOT_EVERY_STEPS
    ) -> None:
        self._holder = holder
        self._every_steps = every_steps
        self._capture = capture
        self._commit = redis.register_script(_COMMIT_SNAPSHOT)
        self.steps = 0
        self.replay_s = 0.0
        self._taken_at = 0.0

    def due(self, now: float) -> bool:
        if not self.steps:
            return False  # nothing to replay: the last snapshot is the state
        since = now - self._taken_at
        return (
            (self.replay_s >= REPLAY_BUDGET_S and since >= REPLAY_BUDGET_AT_MOST_EVERY_S)
            or self.steps >= self._every_steps
            or since >= SNAPSHOT_AT_LEAST_EVERY_S
        )

    async def when_due(self, now: float, *, applied: str, step: str) -> None:
        """At the end of a step: a snapshot if one is due."""
        if self.due(now):
            await self.write_now(applied=applied, step=step)

    async def write_now(self, *, applied: str, step: str) -> None:
        """A snapshot of the state as it is now (after inbox entry ``applied`` and step ``step``),
        and the streams trimmed to what it holds, only while the lease is ours."""
        stored = await self._commit(
            keys=[keys.LEADER, keys.SNAPSHOT, keys.STEPS, keys.INBOX],
            args=[self._holder, self._capture(applied, step), step, applied],
        )
        if not stored:
            raise LeaseLost("the lease was lost before a snapshot")
        self._taken_at = time.time()
        self.steps = 0
        self.replay_s = 0.0
