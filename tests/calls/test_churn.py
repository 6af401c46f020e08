"""Call churn: what a call leaves behind in the server once it has ended (issue 9).

The server runs in this process (so its tasks, threads and objects can be counted); the
peers run in a child process (tests/calls/browsers.py), like real browsers, so this
process's RSS is the server's and not the peers' encoders and decoders.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import statistics
import sys
import threading
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from media.browser import BrowserPeer, ToneTrack
from media.heap import release_free_memory
from media.sources import TestCardTrack
from tests.calls.browsers import ENDINGS
from tests.calls.test_media_calls import media_server, open_call, signalling, wait_for
from tests.conftest import LiveServer, run_server

ROOT = Path(__file__).resolve().parents[2]


async def test_an_ended_call_frees_its_room_and_peers_without_the_cycle_collector(tmp_path):
    """Reference counting alone frees a call's room, peers and compositor once it is closed.

    Python's cyclic collector is off while the calls end: whatever a reference cycle keeps
    (aiortc's peer <-> transport listeners) stays alive, and the test sees it.
    """
    async with media_server(tmp_path) as server:
        for ending in ("customer_hangs_up", "agent_drops"):
            agent_ws, customer_ws, call_id = await open_call(server, ending)
            agent = BrowserPeer.agent(camera=TestCardTrack(640, 360, fps=30), mic=ToneTrack(440))
            customer = BrowserPeer.customer(camera=TestCardTrack(640, 360, fps=30), mic=ToneTrack(880))
            async with agent, customer:
                await agent.negotiate(signalling(agent_ws))
                await customer.negotiate(signalling(customer_ws))
                await customer.video(0).wait(15)
                await agent.video(2).wait(15)
                room = server.switchboard.calls[call_id].room
                kept = [
                    weakref.ref(o)
                    for o in (room, room.compositor, room.compositor.receipt, *room.peers.values())
                ]
                del room
                gc.disable()
                try:
                    if ending == "customer_hangs_up":
                        await customer_ws.send("end_call")
                    else:
                        await agent_ws.close()
                    await customer_ws.expect("call_ended", timeout=10)
                    await wait_for(lambda: not server.switchboard.media._tasks, timeout=15)
                    # Tasks the peers cancelled may still be unwinding: give them a moment. A
                    # reference cycle never clears while the collector is off, so this still fails.
                    with contextlib.suppress(AssertionError):
                        await wait_for(lambda kept=kept: all(ref() is None for ref in kept), timeout=3)
                    alive = [type(ref()).__name__ for ref in kept if ref() is not None]
                finally:
                    gc.enable()
                assert kept and not alive, f"{ending}: still alive after the call closed: {alive}"
            await customer_ws.close()
            await agent_ws.close()


# -- the soak -------------------------------------------------------------------------------


@dataclass
class Sample:
    calls: int
    rss_mb: float
    fds: int
    threads: int
    tasks: int
    of: int = 1  # calls the RSS is the median of

    def __str__(self) -> str:
        return (
            f"after {self.calls} calls: RSS {self.rss_mb:.1f} MB (median of {self.of}), {self.fds} fds, "
            f"{self.threads} threads, {self.tasks} asyncio tasks"
        )


WINDOW = 9  # RSS is the median over this many calls: one sample moves by ~10 % with what threads hold


def median(samples: list[Sample]) -> Sample:
    """The last sample, with the median RSS of all of them."""
    return replace(samples[-1], rss_mb=statistics.median(s.rss_mb for s in samples), of=len(samples))


def sample(calls: int) -> Sample:
    # The server trims the heap at every call's end; what the collector frees after that is
    # trimmed here too, as the next call's end would, so RSS counts what is really held.
    gc.collect()
    release_free_memory()
    with open("/proc/self/status") as status:
        rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return Sample(
        calls,
        rss_kb / 1024,
        len(os.listdir("/proc/self/fd")),
        threading.active_count(),
        len([t for t in asyncio.all_tasks() if not t.done()]),
    )


class Browsers:
    """The child process of peers: one call per :meth:`call`, ended the way it is told."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, ws_url: str) -> AsyncIterator[Browsers]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.calls.browsers",
            ws_url,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            yield cls(process)
        finally:
            assert process.stdin is not None
            process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()

    async def call(self, ending: str, agent_token: str, name: str, media_s: float) -> dict:
        assert self.process.stdin is not None and self.process.stdout is not None
        command = {"ending": ending, "agent_token": agent_token, "name": name, "media_s": media_s}
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), 90)
        assert line, "the browsers' process died"
        reply = json.loads(line)
        assert reply["ok"], f"call {name} ({ending}): {reply['error']}"
        return reply


async def settled(server: LiveServer, timeout: float = 20.0) -> None:
    """Wait until the server holds nothing of past calls: no session, call or closing room."""
    board = server.switchboard
    await wait_for(
        lambda: (
            not board.customers
            and not board.agents
            and not board.calls
            and not board.media._tasks
            and not board._by_conn
        ),
        timeout=timeout,
    )


async def churn(tmp_path: Path, *, calls: int, warm_up: int, media_s: float) -> tuple[Sample, Sample]:
    """``calls`` calls through every ending in turn; samples after ``warm_up`` calls and at the end.

    pytest keeps every log record of a test to report it, which in a soak grows by ~160 KB a
    call (aiortc warns of every H.264 frame it cannot decode before a keyframe): warnings are
    silenced for the run, as a server's log handler would write and forget them. Errors are not.
    """
    logging.disable(logging.WARNING)
    try:
        return await _churn(tmp_path, calls=calls, warm_up=warm_up, media_s=media_s)
    finally:
        logging.disable(logging.NOTSET)


async def _churn(tmp_path: Path, *, calls: int, warm_up: int, media_s: float) -> tuple[Sample, Sample]:
    async with (
        run_server(tmp_path, wrap_up_s=0, rejoin_grace_s=0.3, agent_grace_s=0.3) as server,
        Browsers.start(server.ws_url) as browsers,
    ):
        # The default video settings (720p, H.264): what the issue measured.
        window: list[Sample] = []  # the last WINDOW calls' samples, before the warm-up ends or the run
        first: Sample | None = None
        for index in range(calls):
            ending = ENDINGS[index % len(ENDINGS)]
            await browsers.call(ending, server.token(f"agent-{index % 4}"), f"customer-{index}", media_s)
            await settled(server)
            if warm_up - WINDOW <= index < warm_up or index >= calls - WINDOW:
                window.append(sample(index + 1))
            if index + 1 == warm_up:
                first, window = median(window), []
                print(f"\nchurn {first}", flush=True)
            elif (index + 1) % 100 == 0:
                print(f"churn {sample(index + 1)}", flush=True)
        assert first is not None
        # Uvicorn's per-connection tasks end a moment after the sockets do.
        with contextlib.suppress(AssertionError):
            await wait_for(lambda: sample(calls).tasks <= first.tasks, timeout=5)
        last = median([*window[:-1], sample(calls)])
        print(f"churn {last}; RSS {last.rss_mb - first.rss_mb:+.1f} MB since the warm-up", flush=True)
        assert server.switchboard.status_report()["calls"]["active"] == 0
    return first, last


def check(first: Sample, last: Sample, *, rss_growth: float) -> None:
    assert last.fds <= first.fds + 5, f"fds: {first} -> {last}"
    assert last.threads <= first.threads + 5, f"threads: {first} -> {last}"
    assert last.tasks <= first.tasks, f"asyncio tasks: {first} -> {last}"
    assert last.rss_mb <= first.rss_mb * (1 + rss_growth), f"RSS: {first} -> {last}"


async def test_call_churn_leaves_nothing_behind(tmp_path):
    """30 calls, every ending five times; before the fix RSS grew ~3 MB a call with media.

    A short run's RSS is noisy (what the last collection freed moves it by a few MB), so the
    bound here is 10 %: the leak it guards against added ~20 % in these 12 calls.
    """
    first, last = await churn(tmp_path, calls=30, warm_up=18, media_s=1.0)
    check(first, last, rss_growth=0.10)


@pytest.mark.slow
async def test_call_churn_soak_1000_calls(tmp_path):
    first, last = await churn(tmp_path, calls=1000, warm_up=50, media_s=1.0)
    check(first, last, rss_growth=0.05)  # issue 9's bound
