"""Admission control on a real server: a spent CPU budget makes the next customer wait."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import websockets

from tests.conftest import Client, LiveServer, join, login, run_server


@contextlib.asynccontextmanager
async def clients(server: LiveServer) -> AsyncIterator[Callable[[str], Awaitable[Client]]]:
    opened: list[Client] = []

    async def connect(label: str) -> Client:
        client = Client(await websockets.connect(server.ws_url, max_size=None), label)
        opened.append(client)
        return client

    try:
        yield connect
    finally:
        for client in opened:
            with contextlib.suppress(Exception):
                await client.close()


async def measured(server: LiveServer) -> None:
    """Until the server has its first CPU figure (before it, there is nothing to refuse on)."""
    for _ in range(500):
        if server.switchboard.admission.busy_pct is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no CPU sample")


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_spent_budget_makes_the_next_customer_wait_then_offers_resume_in_order(
    tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="telepresence.admission")
    # A 1 % budget is spent by any machine: one call runs (nothing to protect before it), the
    # next customers wait although an agent is free.
    async with (
        run_server(tmp_path, cpu_budget_pct=1, wrap_up_s=0, offer_timeout_s=30) as server,
        clients(server) as connect,
    ):
        sam = await login(connect, server, "sam")
        await asyncio.sleep(0.05)  # so that Sam is the longest idle
        lea = await login(connect, server, "lea")
        await measured(server)
        ann = await join(connect, "Ann")
        offer = await sam.expect("offer")
        await sam.send("accept", offer_id=offer["offer_id"])
        await ann.expect("call_started")

        bob = await join(connect, "Bob")
        status = await bob.expect("queue_status", capacity=True)
        assert status["state"] == "waiting" and status["position"] == 1
        assert status["expected_wait_s"] > 0  # Ann's call has to end first
        cat = await join(connect, "Cat")
        assert (await cat.expect("queue_status", capacity=True))["position"] == 2
        assert await lea.latest("offer", settle=1.5) is None  # free, but the machine is not
        closed = [r for r in caplog.records if "admission closed" in r.getMessage()]
        assert len(closed) == 1  # one line when it closed, not one per customer or sample

        async with httpx.AsyncClient(base_url=server.url) as http:
            text = (await http.get("/metrics")).text
            report = (await http.get("/api/status")).json()["admission"]
        assert metric(text, "telepresence_admission_open") == 0
        assert metric(text, "telepresence_admission_waiting") == 2
        assert metric(text, "telepresence_admission_refusals_total") >= 2
        assert 0 <= metric(text, "telepresence_cpu_busy_pct") <= 100
        assert report["open"] is False and report["waiting_for_capacity"] == 2

        # Ann's call ends: the machine may start one call again, and Bob (first in line) gets it.
        await sam.send("end_call")
        await ann.expect("call_ended")
        offer = await lea.expect("offer")
        assert offer["customer"]["name"] == "Bob"
        await bob.expect("queue_status", state="offered")
        assert await sam.latest("offer", settle=0.5) is None  # Cat still waits for capacity
        await lea.send("accept", offer_id=offer["offer_id"])
        await bob.expect("call_started")
        assert (await cat.latest("queue_status"))["capacity"] is True

        # The budget raised (as an operator would): Cat is offered to the free agent.
        server.switchboard.admission.budget_pct = 100.0
        offer = await sam.expect("offer")
        assert offer["customer"]["name"] == "Cat"
        assert any("admission open" in r.getMessage() for r in caplog.records)


async def test_with_room_in_the_budget_customers_are_offered_at_once(tmp_path: Path) -> None:
    async with (
        run_server(tmp_path, cpu_budget_pct=100, wrap_up_s=0) as server,
        clients(server) as connect,
    ):
        sam = await login(connect, server, "sam")
        lea = await login(connect, server, "lea")
        await measured(server)
        ann = await join(connect, "Ann")
        bob = await join(connect, "Bob")
        first, second = await sam.expect("offer"), await lea.expect("offer")
        assert {first["customer"]["name"], second["customer"]["name"]} == {"Ann", "Bob"}
        for customer in (ann, bob):
            status = await customer.latest("queue_status")
            assert status is None or status["capacity"] is False


@contextlib.asynccontextmanager
async def busy_core() -> AsyncIterator[None]:
    """One core kept busy by another process: /proc/stat counts in 10 ms ticks, and an idle
    fast machine can read 0 % for seconds (CI once did), which is under any threshold."""
    hog = await asyncio.create_subprocess_exec(sys.executable, "-c", "while True: pass")
    try:
        yield
    finally:
        hog.kill()
        await hog.wait()


async def expect_limits(sam: Client, server: LiveServer, call_id: str) -> dict[str, object]:
    try:
        return await sam.expect("sender_limits", call_id=call_id)
    except AssertionError as exc:
        admission = server.switchboard.admission
        raise AssertionError(
            f"{exc}; admission saw busy {admission.busy_pct}%, shed level {admission.shed_level},"
            f" calls {len(server.switchboard.directory.active_calls())}"
        ) from None


async def test_over_the_shed_threshold_agents_are_asked_to_cap_their_screen_first(tmp_path: Path) -> None:
    # A machine with a busy core is busier than 0.01 %: running calls shed, screen fps first.
    async with (
        busy_core(),
        run_server(tmp_path, cpu_shed_pct=0.01, wrap_up_s=0) as server,
        clients(server) as connect,
    ):
        sam = await login(connect, server, "sam", available=False)
        await sam.send("auto_answer", enabled=True)
        await sam.send("set_status", status="available")
        ann = await join(connect, "Ann")
        started = await ann.expect("call_started")
        limits = await expect_limits(sam, server, started["call_id"])
        # The first step caps the screen's frame rate, not its size (the whole order:
        # test_admission_logic.py).
        assert limits["step"] == "screen_fps_15"
        assert limits["screen"] == {"max_fps": 15.0, "scale_down_by": 1.0}
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert metric((await http.get("/metrics")).text, "telepresence_shed_level") >= 1
        # A call that starts while shedding is told at once.
        await sam.send("end_call")
        await ann.expect("call_ended")
        bob = await join(connect, "Bob")
        started = await bob.expect("call_started")
        limits = await expect_limits(sam, server, started["call_id"])
        assert limits["step"].startswith("screen_") and limits["screen"]["max_fps"] in (15.0, 5.0)
