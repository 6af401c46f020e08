"""Snapshots pickled in a forked child: the state as it was at the fork, the steps going on meanwhile."""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import time

from redis.asyncio import Redis

from telepresence.centre import keys
from telepresence.centre.snapshot_child import SnapshotChild
from telepresence.centre.snapshot_writer import SnapshotWriter
from tests.redis_server import RedisServer


async def finished(child: SnapshotChild, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not child.ready:
        assert time.monotonic() < deadline, "the snapshot child did not finish"
        await asyncio.sleep(0.01)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_the_child_pickles_the_state_as_it_was_when_forked_while_the_parent_changes_it():
    state = {"waiting": [f"customer-{i}" for i in range(20_000)], "step": "7-0"}
    child = SnapshotChild(lambda: pickle.dumps(state))
    state["waiting"].clear()  # the leader's next steps, at once
    state["step"] = "8-0"
    try:
        await finished(child)
        restored = pickle.loads(child.take())
    finally:
        child.close()
    assert restored["step"] == "7-0"
    assert len(restored["waiting"]) == 20_000


async def test_a_child_that_fails_says_so_and_a_child_still_running_is_killed_on_close():
    def fail() -> bytes:
        raise ValueError("cannot pickle this")

    failing = SnapshotChild(fail)
    await finished(failing)
    try:
        failing.take()
    except RuntimeError as exc:
        assert "whole snapshot" in str(exc)
    else:
        raise AssertionError("a failed child's snapshot was taken")
    failing.close()

    slow = SnapshotChild(lambda: time.sleep(60) or b"")
    pid = slow.pid
    assert pid is not None and not slow.ready
    slow.close()  # the term ended
    slow.close()
    assert slow.ready and gone(pid)  # killed and reaped: no zombie left behind


async def test_the_child_holds_none_of_the_servers_sockets():
    # A child that kept the listening socket would keep the port of a killed server busy.
    listener = socket.create_server(("127.0.0.1", 0))
    fd = listener.fileno()

    def open_in_child() -> bytes:
        try:
            os.fstat(fd)
        except OSError:
            return b"closed"
        return b"open"

    child = SnapshotChild(open_in_child)
    try:
        await finished(child)
        assert child.take() == b"closed"
        os.fstat(fd)  # the parent's is untouched
    finally:
        child.close()
        listener.close()


async def test_the_writer_commits_the_childs_snapshot_and_keeps_the_steps_taken_meanwhile(
    redis_server: RedisServer,
):
    redis = Redis.from_url(redis_server.url)
    try:
        await redis.set(keys.LEADER, "me#1")
        state = {"applied": "0-0", "step": "0-0"}

        def capture(applied: str, step: str) -> bytes:
            return pickle.dumps({**state, "labels": (applied, step)})

        writer = SnapshotWriter(redis, "me#1", capture)
        steps = [(await redis.xadd(keys.STEPS, {"r": "{}"})).decode() for _ in range(3)]
        state["step"] = steps[-1]
        writer.steps = 3
        await writer.when_due(time.time(), applied="5-0", step=steps[-1])  # due: a child starts
        assert writer.poll_s() < 1
        state["step"] = "changed after the fork"
        later = (await redis.xadd(keys.STEPS, {"r": "{}"})).decode()  # committed while it pickles
        writer.steps += 1
        deadline = time.monotonic() + 10
        while writer.poll_s() < 1:  # the steps go on until the child is committed
            assert time.monotonic() < deadline, "the child's snapshot was never committed"
            await asyncio.sleep(0.02)
            await writer.when_due(time.time(), applied="6-0", step=later)
        stored = pickle.loads(await redis.get(keys.SNAPSHOT))
        assert stored == {"applied": "0-0", "step": steps[-1], "labels": ("5-0", steps[-1])}
        remaining = [entry_id.decode() for entry_id, _ in await redis.xrange(keys.STEPS)]
        assert remaining == [steps[-1], later]  # trimmed to the snapshot: the later step stays
        assert writer.steps == 1  # and is still counted for the next snapshot
        writer.close()
    finally:
        await redis.aclose()
