"""The leader's snapshots: written when due, the streams trimmed to what they hold (the lease holder only)."""

from __future__ import annotations

import pickle
import time

import pytest
from redis.asyncio import Redis

from telepresence.centre import keys
from telepresence.centre.lease import LeaseLost
from telepresence.centre.snapshot_writer import (
    REPLAY_BUDGET_AT_MOST_EVERY_S,
    REPLAY_BUDGET_S,
    SNAPSHOT_AT_LEAST_EVERY_S,
    SNAPSHOT_EVERY_STEPS,
    SnapshotWriter,
)
from tests.redis_server import RedisServer


def capture(applied: str, step: str) -> bytes:
    return pickle.dumps({"applied": applied, "step": step})


async def test_a_due_snapshot_holds_the_last_step_and_trims_only_what_it_holds(redis_server: RedisServer):
    redis = Redis.from_url(redis_server.url)
    try:
        await redis.set(keys.LEADER, "me#1")
        writer = SnapshotWriter(redis, "me#1", capture)
        await writer.write_now(applied="0-0", step="0-0")  # a term's start
        steps = [(await redis.xadd(keys.STEPS, {"r": "{}"})).decode() for _ in range(3)]
        writer.steps, writer.replay_s = 3, REPLAY_BUDGET_S / 2
        soon = time.time() + REPLAY_BUDGET_AT_MOST_EVERY_S
        await writer.when_due(soon, applied="5-0", step=steps[1])  # not due yet: nothing written
        assert pickle.loads(await redis.get(keys.SNAPSHOT)) == {"applied": "0-0", "step": "0-0"}
        writer.replay_s += REPLAY_BUDGET_S / 2  # replaying the steps since would now cost the budget
        # ... but the budget over-counts on a busy node: it calls at most as often as the old period.
        assert not writer.due(time.time() + 1)
        await writer.when_due(soon, applied="5-0", step=steps[1])
        assert pickle.loads(await redis.get(keys.SNAPSHOT)) == {"applied": "5-0", "step": steps[1]}
        remaining = [entry_id.decode() for entry_id, _ in await redis.xrange(keys.STEPS)]
        assert remaining == steps[1:]  # the step after the snapshot stays for a successor to replay
        assert (writer.steps, writer.replay_s) == (0, 0.0)
        later = soon + 3 * SNAPSHOT_AT_LEAST_EVERY_S
        await writer.when_due(later, applied="6-0", step=steps[2])  # no step since: nothing to replay
        assert pickle.loads(await redis.get(keys.SNAPSHOT))["step"] == steps[1]
    finally:
        await redis.aclose()


async def test_cheap_steps_wait_for_the_step_count_or_the_longest_interval(redis_server: RedisServer):
    redis = Redis.from_url(redis_server.url)
    try:
        await redis.set(keys.LEADER, "me#1")
        writer = SnapshotWriter(redis, "me#1", capture)
        await writer.write_now(applied="0-0", step="0-0")
        now = time.time()
        writer.steps, writer.replay_s = SNAPSHOT_EVERY_STEPS - 1, 0.001
        assert not writer.due(now + SNAPSHOT_AT_LEAST_EVERY_S / 2)  # a quiet centre: no 4 MB re-pickled
        writer.steps += 1
        assert writer.due(now)
        writer.steps = 1
        assert writer.due(now + SNAPSHOT_AT_LEAST_EVERY_S + 1)  # the streams are still trimmed
        await writer.when_due(now + SNAPSHOT_AT_LEAST_EVERY_S + 1, applied="7-0", step="7-0")
        assert pickle.loads(await redis.get(keys.SNAPSHOT))["step"] == "7-0"
        # The snapshot_every_steps setting (a benchmark's tiny run takes snapshots with it).
        every_third = SnapshotWriter(redis, "me#1", capture, every_steps=3)
        await every_third.write_now(applied="7-0", step="7-0")
        now = time.time()
        every_third.steps = 2
        assert not every_third.due(now)
        every_third.steps = writer.steps = 3
        assert every_third.due(now) and not writer.due(now)
    finally:
        await redis.aclose()


async def test_a_leader_that_lost_its_lease_writes_no_snapshot(redis_server: RedisServer):
    redis = Redis.from_url(redis_server.url)
    try:
        await redis.set(keys.LEADER, "successor#2")
        writer = SnapshotWriter(redis, "me#1", capture)
        with pytest.raises(LeaseLost):
            await writer.write_now(applied="9-0", step="9-0")
        assert await redis.get(keys.SNAPSHOT) is None
    finally:
        await redis.aclose()
