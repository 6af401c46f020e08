"""Issue 9: a structure-aware protocol fuzzer against a real server on loopback.

Hypothesis draws programs (tests/fuzz/frame_strategies.py): sockets set up in a role
(anonymous, customer, agent, operator, a call's agent and customer), then frames of
every client message type, broken in every way we could think of, in any order. After
each frame a ``ping`` is the barrier: its ``pong`` (or the socket's close) says the
frame was handled. Every violation of the contract is collected (not raised at once,
so one run reports every defect, each with the frame that shows it) and the test
fails at the end listing them:

- an error whose code is not in the Errors table of docs/protocol.md, or ``internal``;
- a close code not in the Close codes table (1001 excepted: the server is not stopping);
- the wrong error for what the frame is (not UTF-8 or not JSON: ``bad_json``; not an
  object: ``bad_message``; ...: an oracle written apart from the server's parser);
- no answer within a timeout (a hang), an error logged by the server;
- a bystander customer who joined first losing their place or ticket;
- /metrics or /api/status growing with the number of messages (unbounded labels, queues).

Run with ``-s`` to see the figures it prints. ``--run-slow`` adds a 100,000-message run.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telepresence.protocol import BROWSER_STATS
from tests.conftest import run_server
from tests.fuzz.contract import CLOSE_CODES, ERROR_CODES, expect
from tests.fuzz.frame_strategies import MessageFrame, Program, RawFrame, frames, programs
from tests.fuzz.message_strategies import LABEL_WORDS
from tests.fuzz.runner import HYPOTHESIS, Fuzzer, server_errors
from tests.fuzz.sdp_damage import canned_offer

# Hypothesis draws in a worker thread while the server runs in this one, and the server's
# peers (aioice, aiortc) use the `random` module: Hypothesis sees the global state move during
# a draw and blames the strategy. Nothing in the strategies touches `random`.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)

METRICS_GROWTH_BOUND = 20 * 1024
FUZZ_SETTINGS = {
    "rate_per_s": 1_000_000.0,  # so a few thousand messages go fast; the limiter has its own test
    "rate_burst": 1_000_000,
    "rejoin_grace_s": 1.0,
    "agent_grace_s": 0.0,
    "wrap_up_s": 5.0,
    "offer_timeout_s": 30.0,
}
# Queues the harness and the fuzzer's fixed vocabulary name; any other one is a random label's.
WORDS = {w for w in LABEL_WORDS if w}
KNOWN_SKILLS = WORDS | {"general", "fuzzcall", "bystander"}
KNOWN_LANGUAGES = WORDS | {"any", "zz"}


async def fuzz(tmp_path: Path, *, max_examples: int, max_actions: int) -> None:
    async with run_server(tmp_path, **FUZZ_SETTINGS) as server:
        fuzzer = Fuzzer(server, await canned_offer())
        loop = asyncio.get_running_loop()
        await fuzzer.start_bystander()
        # Warm up every label the server legitimately has (a call's receipt with every figure the
        # web client reports, both sides), so "before" already holds them.
        agent, customer = await fuzzer.call("warmup", stats=dict.fromkeys(BROWSER_STATS, 1.0))
        await customer.send('{"type": "end_call"}')
        await fuzzer.barrier(customer)
        await agent.close()
        await customer.close()
        await asyncio.sleep(FUZZ_SETTINGS["rejoin_grace_s"] + 0.5)
        before = await fuzzer.sizes()
        started = time.monotonic()

        @settings(max_examples=max_examples, **HYPOTHESIS)
        @given(programs(max_actions))
        def one(program: Program) -> None:
            asyncio.run_coroutine_threadsafe(fuzzer.run(program), loop).result(timeout=600)
            if fuzzer.examples % 25 == 0:
                fuzzer.check_bystander()

        with server_errors() as logged:
            await asyncio.to_thread(one)
            seconds = time.monotonic() - started
            # Dropped fuzz customers are forgotten after the grace period; then measure again.
            await asyncio.sleep(FUZZ_SETTINGS["rejoin_grace_s"] + 1.0)
            after = await fuzzer.sizes()
            await fuzzer.finish_bystander()
            async with httpx.AsyncClient(base_url=server.url) as client:
                if (await client.get("/healthz")).status_code != 200:
                    fuzzer.violation("server not healthy after the run", "")
        for record in logged.records:
            fuzzer.violation(f"server logged an error ({record.name})", record.getMessage()[:300])
        if after[0] - before[0] >= METRICS_GROWTH_BOUND:
            fuzzer.violation("/metrics grows with the messages", f"{before[0]} -> {after[0]} bytes")
        # Every fuzz customer is gone: a queue named by a random label must be gone too.
        for where, queue in after[3]:
            if where == "/metrics" and queue == "other":
                continue  # documented: abandoned customers of queues nobody named count as "other"
            skill, _, language = queue.partition("/")
            if skill not in KNOWN_SKILLS or language not in KNOWN_LANGUAGES:
                fuzzer.violation(f"a random queue lingers in {where}", queue)
        report = fuzzer.report(before, after, seconds)
        print(report)
        assert not fuzzer.violations, report


async def test_protocol_fuzz(tmp_path):
    """A few thousand fuzzed messages (about 30 s on two cores)."""
    await fuzz(tmp_path, max_examples=400, max_actions=30)


@pytest.mark.slow
async def test_protocol_fuzz_100k(tmp_path):
    """About 100,000 messages (12,000 programs of 5 to 30 frames; some ten minutes)."""
    await fuzz(tmp_path, max_examples=12_000, max_actions=30)


# ---------------------------------------------------------------- the rate limiter, default limits


async def test_fuzz_bursts_under_default_rate_limits(tmp_path):
    """Bursts of fuzzed frames with the default limits: rate_limited then 1008, nothing else breaks."""
    async with run_server(tmp_path, rejoin_grace_s=1.0, agent_grace_s=0.0) as server:
        assert (server.settings.rate_per_s, server.settings.rate_burst) == (20.0, 40)
        fuzzer = Fuzzer(server, await canned_offer())
        loop = asyncio.get_running_loop()
        await fuzzer.start_bystander()
        floods = Counter()

        async def burst(batch: list[MessageFrame | RawFrame]) -> None:
            fuzzer.examples += 1
            sock = await fuzzer.connect(f"burst{fuzzer.examples}")
            fuzzer.socks = [sock]
            sent = 0
            started = loop.time()
            for frame in batch:
                data = fuzzer.data(frame)
                if expect(data, fuzzer.max_bytes).close is not None:
                    continue  # this test is about the rate, not the size
                if isinstance(frame, MessageFrame) and frame.message.get("type") == "ping":
                    continue  # its pong would end the settling below before the burst was read
                if not await sock.send(data):
                    break
                sent += 1
            fuzzer.sent += sent
            # Settle: ping every 100 ms (the bucket refills 2 a tick) until a pong or the close.
            for _ in range(100):
                if sock.closed or not await sock.send('{"type": "ping"}'):
                    break
                if await sock.wait(lambda: sock.count("pong") > 0, 0.1):
                    break
            await sock.wait(lambda: sock.count("pong") > 0, 2)
            # The bucket refills while the server reads the burst, which ends by the pong (a busy
            # machine reads it over seconds); the pings of the settling count against it too.
            allowed = server.settings.rate_burst + server.settings.rate_per_s * (loop.time() - started)
            errors = [m.get("code") for m in sock.messages if m["type"] == "error"]
            for code in set(errors) - ERROR_CODES:
                fuzzer.violation(f"error code {code!r}", str(batch[:3])[:300])
            if sock.closed:
                fuzzer.closes[sock.close_code] += 1
                if sock.close_code not in CLOSE_CODES:
                    fuzzer.violation(f"close code {sock.close_code}", str(batch[:3])[:300])
            elif sock.count("pong") == 0:
                fuzzer.violation("hang: no pong after a burst", str(batch[:3])[:300])
            if sent > allowed + 25:
                floods["big bursts"] += 1
                if "rate_limited" not in errors and sock.close_code != 1008:
                    fuzzer.violation(
                        "a burst over the limit was not rate limited",
                        f"{sent} frames in {loop.time() - started:.2f} s, errors {Counter(errors)},"
                        f" closed {sock.close_code}, kinds {Counter(type(f).__name__ for f in batch)}",
                    )
            if sock.close_code == 1008:
                floods["closed 1008"] += 1
            await sock.close()

        @settings(max_examples=30, **HYPOTHESIS)
        @given(st.lists(frames, min_size=1, max_size=10), st.sampled_from([5, 30, 45, 70, 120]))
        def one(frames: list[MessageFrame | RawFrame], size: int) -> None:
            batch = (frames * size)[:size]
            asyncio.run_coroutine_threadsafe(burst(batch), loop).result(timeout=120)

        with server_errors() as logged:
            await asyncio.to_thread(one)
            fuzzer.check_bystander()
        for record in logged.records:
            fuzzer.violation(f"server logged an error ({record.name})", record.getMessage()[:300])
        errors, closes = dict(fuzzer.errors), dict(fuzzer.closes)
        print(f"default limits: {fuzzer.sent} messages, errors {errors}, closes {closes}")
        assert floods["big bursts"] > 0 and floods["closed 1008"] > 0, floods
        assert not fuzzer.violations, fuzzer.violations
