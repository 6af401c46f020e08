"""The leader's snapshots: written when due, the streams trimmed to what they hold (the lease holder only)."""

from __future__ import annotations

import pickle
import time

import pytest
from redis.asyncio import Redis

from telepresence.centre import keys
from telepresence.centre.lease import LeaseLost
from telepresence.centre.snapshot_writer import SNAPSHOT_EVERY_S, SnapshotWriter
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
        writer.steps = 3
        soon = time.time() + 1
        await writer.when_due(soon, applied="5-0", step=steps[1])  # not due yet: nothing written
        assert pickle.loads(await redis.get(keys.SNAPSHOT)) == {"applied": "0-0", "step": "0-0"}
        await writer.when_due(soon + SNAPSHOT_EVERY_S, applied="5-0", step=steps[1])
        assert pickle.loads(await redis.get(keys.SNAPSHOT)) == {"applied": "5-0", "step": steps[1]}
        remaining = [entry_id.decode() for entry_id, _ in await redis.xrange(keys.STEPS)]
        assert remaining == steps[1:]  # the step after the snapshot stays for a successor to replay
        assert writer.steps == 0
        await writer.when_due(soon + 3 * SNAPSHOT_EVERY_S, applied="6-0", step=steps[2])  # no step since
        assert pickle.loads(await redis.get(keys.SNAPSHOT))["step"] == steps[1]
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
