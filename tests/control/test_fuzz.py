"""Issue 9: a structure-aware protocol fuzzer against a real server on loopback.

Hypothesis draws programs (tests/control/fuzz_strategies.py): sockets set up in a role
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
import contextlib
import json
import logging
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from tests.conftest import LiveServer, run_server
from tests.control.fuzz_strategies import (
    ENTRY_TYPES,
    LANGUAGE_WORDS,
    SKILL_WORDS,
    MessageFrame,
    Program,
    RawFrame,
    Ref,
    damage,
    damage_sdp,
    documented_close_codes,
    documented_error_codes,
    encode,
    expect,
    frames,
    programs,
    resolve,
)

ERROR_CODES = documented_error_codes() - {"internal"}
# 1001 is documented for a server that is shutting down: this one is not.
CLOSE_CODES = documented_close_codes() - {1001}
REPLY_TIMEOUT_S = 10.0
METRICS_GROWTH_BOUND = 20 * 1024
FUZZ_SETTINGS = {
    "rate_per_s": 1_000_000.0,  # so a few thousand messages go fast; the limiter has its own test
    "rate_burst": 1_000_000,
    "rejoin_grace_s": 1.0,
    "agent_grace_s": 0.0,
    "wrap_up_s": 5.0,
    "offer_timeout_s": 30.0,
}
BYSTANDER_QUEUE = {"skill": "bystander", "language": "zz"}  # a queue no fuzzed agent serves
# Queues the harness and the fuzzer's fixed vocabulary name; any other one is a random label's.
WORDS = {w for w in SKILL_WORDS + LANGUAGE_WORDS + ["aurora", "harbor"] if w}
KNOWN_SKILLS = WORDS | {"general", "fuzzcall", "bystander"}
KNOWN_LANGUAGES = WORDS | {"any", "zz"}
HYPOTHESIS = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    "phases": [Phase.explicit, Phase.generate],  # every violation is collected: nothing to shrink
    "suppress_health_check": list(HealthCheck),
    "print_blob": False,
}


async def canned_offer() -> str:
    """A real, browser-like SDP offer (audio, camera, screen), made by aiortc without network."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    pc.addTransceiver("audio", "sendrecv")
    pc.addTransceiver("video", "sendrecv")
    pc.addTransceiver("video", "sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


class Sock:
    """A WebSocket with a reader task: every message it gets, and how it closed."""

    def __init__(self, ws: websockets.ClientConnection, label: str, fuzzer: Fuzzer) -> None:
        self.ws = ws
        self.label = label
        self.fuzzer = fuzzer
        self.messages: list[dict[str, Any]] = []
        self.closed = False
        self.close_code: int | None = None
        self.ours = False  # we closed it
        self.identified = False  # got welcome or logged_in: no longer anonymous
        self._event = asyncio.Event()
        self._task = asyncio.create_task(self._read(), name=f"fuzz-{label}")

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                try:
                    message = json.loads(raw)
                    assert isinstance(message, dict) and isinstance(message.get("type"), str)
                except (ValueError, AssertionError):
                    self.fuzzer.violation("server sent a frame that is not a message", repr(raw)[:200])
                    continue
                if message["type"] in ("welcome", "logged_in"):
                    self.identified = True
                if message["type"] == "error":
                    self.fuzzer.errors[message.get("code")] += 1
                self.messages.append(message)
                self._event.set()
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            self.close_code = self.ws.close_code
            self._event.set()

    def count(self, type: str) -> int:
        return sum(1 for m in self.messages if m["type"] == type)

    async def wait(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            self._event.clear()
            if predicate() or self.closed:
                return bool(predicate())
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), remaining)

    async def expect(self, type: str, timeout: float = 5.0, **match: Any) -> dict[str, Any] | None:
        def found() -> dict[str, Any] | None:
            for m in self.messages:
                if m["type"] == type and all(m.get(k) == v for k, v in match.items()):
                    return m
            return None

        await self.wait(lambda: found() is not None, timeout)
        return found()

    async def send(self, data: str | bytes) -> bool:
        try:
            await self.ws.send(data)
        except ConnectionClosed:
            return False
        return True

    async def close(self) -> None:
        self.ours = not self.closed
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 5)


class Fuzzer:
    """Runs programs against one server and keeps the figures and the violations."""

    def __init__(self, server: LiveServer, sdp: str) -> None:
        self.server = server
        self.sdp = sdp
        self.max_bytes = server.settings.max_message_bytes
        self.sent = 0
        self.barriers = 0
        self.examples = 0
        self.errors: Counter[str] = Counter()
        self.timing: Counter[str] = Counter()
        self.closes: Counter[int] = Counter()
        self.violations: dict[str, list[str]] = {}
        self.bystander: Sock | None = None
        self.bystander_welcome: dict[str, Any] = {}
        self.ctx: dict[str, Any] = {}
        self.socks: list[Sock] = []

    def violation(self, kind: str, detail: str) -> None:
        self.violations.setdefault(kind, []).append(detail)

    # ------------------------------------------------------------ sockets

    async def connect(self, label: str) -> Sock:
        ws = await websockets.connect(self.server.ws_url, max_size=None, ping_interval=None)
        return Sock(ws, label, self)

    async def join(self, label: str, **fields: Any) -> Sock:
        sock = await self.connect(label)
        await sock.send(json.dumps({"type": "join", "name": label, **fields}))
        if await sock.expect("welcome") is None:
            self.violation("setup: join got no welcome", f"{label}: {sock.messages[-3:]}")
        return sock

    async def login(self, name: str, *, role: str = "agent", available: bool = False, **claims: Any) -> Sock:
        sock = await self.connect(name)
        await sock.send(json.dumps({"type": "login", "token": self.server.token(name, role=role, **claims)}))
        if await sock.expect("logged_in") is None:
            self.violation("setup: login got no logged_in", f"{name}: {sock.messages[-3:]}")
        if available:
            await sock.send(json.dumps({"type": "set_status", "status": "available"}))
            await sock.expect("agent_status")
        return sock

    async def start_bystander(self) -> None:
        self.bystander = await self.join("Bystander", **BYSTANDER_QUEUE)
        self.bystander_welcome = self.bystander.messages[0]
        status = await self.bystander.expect("queue_status")
        assert status is not None and status["position"] == 1, self.bystander.messages

    async def call(self, label: str, *, stats: dict[str, float] | None = None) -> tuple[Sock, Sock]:
        """An agent and a customer in a call (the agent serves a queue of its own)."""
        agent = await self.login(f"{label}-agent", available=True, skills=("fuzzcall",), languages=("en",))
        customer = await self.join(f"{label}-customer", skill="fuzzcall", language="en")
        offer = await agent.expect("offer", customer={**_public(customer, "fuzzcall")})
        if offer is None:
            self.violation("setup: no offer for the call", f"{label}: {agent.messages[-3:]}")
            return agent, customer
        await agent.send(json.dumps({"type": "accept", "offer_id": offer["offer_id"]}))
        if await customer.expect("call_started") is None:
            self.violation("setup: no call_started", f"{label}: {customer.messages[-3:]}")
        if stats is not None:
            for sock in (agent, customer):
                await sock.send(json.dumps({"type": "media_stats", "stats": stats}))
                await self.barrier(sock)
        return agent, customer

    async def settle(self, sock: Sock, start: int, expectation: Any) -> bool:
        """The ping barrier after a frame: True once the frame's replies and the barrier's pong are in.

        The frame may itself be answered with a pong (a ping, or something the server wrongly
        takes for one): a pong with no error before it, from a frame that may be a ping or
        that should have been refused, is the frame's own, and the barrier's is awaited too.
        """
        self.barriers += 1
        if not await sock.send('{"type": "ping"}'):
            return False

        def pongs() -> list[int]:
            return [i for i, m in enumerate(sock.messages[start:]) if m["type"] == "pong"]

        def frame_ponged() -> bool:
            first = pongs()[0]
            return not any(m["type"] == "error" for m in sock.messages[start : start + first])

        if not await sock.wait(lambda: len(pongs()) >= 1, REPLY_TIMEOUT_S):
            if not sock.closed:
                self.violation("hang: no pong within the timeout", f"{sock.label}: {sock.messages[-3:]}")
            return False
        may_pong = expectation.message_type == "ping" or (expectation.codes and not expectation.ok)
        if len(pongs()) >= 2 or not may_pong or not frame_ponged():
            return True
        timeout = REPLY_TIMEOUT_S if expectation.message_type == "ping" else 2.0
        if await sock.wait(lambda: len(pongs()) >= 2, timeout):
            return True
        if expectation.message_type == "ping" and not sock.closed:
            self.violation("hang: no pong within the timeout", f"{sock.label}: {sock.messages[-3:]}")
        return not sock.closed

    async def barrier(self, sock: Sock, pongs: int = 1) -> bool:
        """Ping; True once the pong(s) are in, False if the socket closed first (or hangs)."""
        target = sock.count("pong") + pongs
        self.barriers += 1
        if not await sock.send('{"type": "ping"}'):
            return False
        if await sock.wait(lambda: sock.count("pong") >= target, REPLY_TIMEOUT_S):
            return True
        if not sock.closed:
            self.violation("hang: no pong within the timeout", f"{sock.label}: {sock.messages[-3:]}")
        return False

    # ------------------------------------------------------------ programs

    async def setup(self, program: Program, n: int) -> list[Sock]:
        label = f"fz{n}"
        self.ctx = {}
        if program.scenario == "anonymous":
            return [await self.connect(label), await self.connect(f"{label}-b")]
        if program.scenario == "customer":
            language = LANGUAGE_WORDS[n % len(LANGUAGE_WORDS)]
            return [await self.join(label, language=language), await self.connect(f"{label}-b")]
        if program.scenario == "agent":
            agent = await self.login(f"{label}-agent", available=program.available, languages=("en",))
            return [agent, await self.connect(f"{label}-b")]
        if program.scenario == "operator":
            return [await self.login(f"{label}-op", role="operator"), await self.connect(f"{label}-b")]
        agent, customer = await self.call(label)
        return [agent, customer]

    async def run(self, program: Program) -> None:
        self.examples += 1
        clock = time.monotonic()
        socks = self.socks = await self.setup(program, self.examples)
        self.timing["setup"] += time.monotonic() - clock
        clock = time.monotonic()
        try:
            for who, frame in program.actions:
                index = who % len(socks)
                if socks[index].closed:  # closed by the server: carry on with a fresh socket
                    await self.retire(socks[index])
                    socks[index] = await self.connect(f"{socks[index].label}-r")
                await self.exchange(socks[index], frame)
        finally:
            self.timing["exchange"] += time.monotonic() - clock
            clock = time.monotonic()
            for sock in socks:
                await self.retire(sock)
            await self.stop_host()
            self.timing["teardown"] += time.monotonic() - clock

    async def retire(self, sock: Sock) -> None:
        """Close a socket; count (and check) the close if the server closed it first."""
        await sock.close()
        if not sock.ours and sock.close_code is not None:
            sock.ours = True
            self.closes[sock.close_code] += 1
            if sock.close_code not in CLOSE_CODES:
                self.violation(f"close code {sock.close_code}", f"{sock.label}: {sock.messages[-3:]}")

    async def exchange(self, sock: Sock, frame: MessageFrame | RawFrame) -> None:
        if isinstance(frame, MessageFrame):
            data = encode(resolve(frame.message, self.lookup), frame.encoding)
            shown = f"{frame.encoding}: {_short(data)}"
        else:
            data, shown = frame.data, f"{frame.note or 'raw'}: {_short(frame.data)}"
        family = _family(frame)
        expectation = expect(data, self.max_bytes)
        anonymous = not sock.identified
        start = len(sock.messages)
        self.sent += 1
        if not await sock.send(data):
            return
        if expectation.close is not None:
            await sock.wait(lambda: False, REPLY_TIMEOUT_S)
            if sock.close_code != expectation.close:
                self.violation(
                    f"expected close {expectation.close}",
                    f"{shown} -> closed {sock.close_code} {sock.closed}",
                )
            return
        ok = await self.settle(sock, start, expectation)
        replies = sock.messages[start:]
        errors = [m.get("code") for m in replies if m["type"] == "error"]
        where = f"[{sock.label}, {'anonymous' if anonymous else 'identified'}] {shown}"
        for code in errors:
            if code not in ERROR_CODES:
                self.violation(
                    f"error code {code!r} <- {family}", f"{where} -> {_first_error(replies, code)}"
                )
        if sock.closed:
            if sock.close_code not in CLOSE_CODES:
                self.violation(f"close code {sock.close_code} <- {family}", where)
            elif sock.close_code == 1009:
                self.violation("close 1009 for a frame under the limit", where)
            return
        if not ok:
            return
        refused = set(errors) & expectation.codes
        if expectation.codes and not refused and not expectation.ok:
            got = [m.get("code", m["type"]) for m in replies[:-1]] or "nothing"
            self.violation(f"expected {'/'.join(sorted(expectation.codes))} <- {family}", f"{where} -> {got}")
        if expectation.message_type is not None and not refused:
            wrong = {"bad_json", "bad_message", "unknown_type", "invalid"} & set(errors)
            if wrong:
                self.violation(
                    f"valid message refused as {sorted(wrong)} <- {family}", f"{where} -> {replies[:2]}"
                )
            if anonymous and expectation.message_type not in ENTRY_TYPES and "not_joined" not in errors:
                self.violation(
                    f"anonymous socket not told not_joined <- {family}", f"{where} -> {replies[:2]}"
                )

    # ------------------------------------------------------------ run-time values

    def lookup(self, ref: Ref) -> Any:
        server = self.server
        bystander_key = self.bystander_welcome.get("customer_key", "")
        if ref.kind == "token":
            name = {"agent_other_name": f"fz{ref.at % 5}", "agent_nonascii_name": "é😀 Ölga\u0000"}.get(
                ref.variant, "fz-agent"
            )
            if ref.variant == "operator":
                value = server.token("fz-op", role="operator")
            elif ref.variant == "customer_key":
                value = bystander_key
            else:
                ttl = -1 if ref.variant == "expired" else 3600
                value = server.token(name, languages=("en",), ttl=ttl)
            return damage(value, ref.damage, ref.at, ref.char, other=bystander_key)
        if ref.kind == "customer_key":
            own = next(
                (m["customer_key"] for s in self.socks for m in s.messages if m["type"] == "welcome"), None
            )
            value = {
                "own": own or bystander_key,
                "bystander": bystander_key,
                "minted": server.authority.customer_key(f"cust-fuzz{ref.at % 7}"),
                "agent_token": server.token("fz-agent", languages=("en",)),
            }[ref.variant]
            return damage(value, ref.damage, ref.at, ref.char, other=server.token("x"))
        if ref.kind == "ticket":
            real = self.bystander_welcome.get("ticket", "")
            if ref.variant == "own":
                own = [m["ticket"] for s in self.socks for m in s.messages if m["type"] == "welcome"]
                return damage(own[-1] if own else "no-ticket", ref.damage, ref.at, ref.char)
            if ref.variant == "random":
                return f"t{ref.at}"
            forged = damage(real, ref.damage, ref.at, ref.char)
            # Never the bystander's own ticket (white space is trimmed): that would be a takeover.
            return forged if forged.strip() != real else damage(real, "flip", ref.at)
        if ref.kind in ("offer_id", "call_id"):
            kind = "offer" if ref.kind == "offer_id" else "call_started"
            seen = [
                m[ref.kind] for s in self.socks for m in s.messages if m["type"] == kind and ref.kind in m
            ]
            value = seen[-1] if seen and ref.variant in ("last", "current") else ref.variant
            return damage(value, ref.damage, ref.at, ref.char)
        if ref.kind == "sdp":
            return damage_sdp(self.sdp, ref.damage, ref.at, ref.char)
        raise AssertionError(f"unknown reference {ref}")

    async def stop_host(self) -> None:
        """An operator may have started the avatar host: stop it, so examples do not depend on it."""
        if self.server.switchboard.media.hosts.host is None:
            return
        async with httpx.AsyncClient(base_url=self.server.url) as client:
            token = self.server.token("fz-cleanup", role="operator")
            await client.post(
                "/api/host", json={"type": "host_stop"}, headers={"Authorization": f"Bearer {token}"}
            )

    # ------------------------------------------------------------ the world around

    async def sizes(self) -> tuple[int, int, int, set[tuple[str, str]]]:
        """/metrics bytes, /api/status bytes, queues in /api/status, and (where, queue) for both."""
        async with httpx.AsyncClient(base_url=self.server.url) as client:
            metrics = await client.get("/metrics")
            status = await client.get("/api/status")
        assert metrics.status_code == 200 and status.status_code == 200
        queues = {("/api/status", q["queue"]) for q in status.json()["queues"]}
        queues |= {("/metrics", q) for q in re.findall(r'queue="([^"]*)"', metrics.text)}
        return len(metrics.content), len(status.content), len(status.json()["queues"]), queues

    def check_bystander(self) -> None:
        assert self.bystander is not None
        if self.bystander.closed:
            self.violation("bystander's socket closed", f"code {self.bystander.close_code}")
        for message in self.bystander.messages[1:]:
            if message["type"] == "pong":
                continue
            if message["type"] != "queue_status" or message.get("position") != 1:
                self.violation("bystander disturbed", str(message)[:200])

    async def finish_bystander(self) -> None:
        """The bystander is still first, and their ticket still brings their place back."""
        assert self.bystander is not None
        if await self.barrier(self.bystander):
            self.check_bystander()
        ticket = self.bystander_welcome["ticket"]
        tab = await self.connect("bystander-reload")
        await tab.send(json.dumps({"type": "rejoin", "ticket": ticket}))
        welcome = await tab.expect("welcome")
        status = await tab.expect("queue_status")
        if welcome is None or welcome.get("ticket") != ticket or not welcome.get("rejoined"):
            self.violation("bystander's ticket no longer works", str(tab.messages[:3]))
        elif status is None or status.get("position") != 1:
            self.violation("bystander lost their place", str(tab.messages[:4]))
        await self.bystander.wait(lambda: False, 2)
        if self.bystander.close_code != 4001:
            self.violation("bystander's old tab not taken over (4001)", str(self.bystander.close_code))
        await tab.close()
        await self.bystander.close()

    def report(self, before: tuple[Any, ...], after: tuple[Any, ...], seconds: float) -> str:
        lines = [
            f"fuzz: {self.examples} programs, {self.sent} messages sent ({self.barriers} ping barriers) "
            f"in {seconds:.1f} s ({', '.join(f'{k} {v:.1f} s' for k, v in self.timing.items())})",
            f"errors by code: {dict(sorted(self.errors.items(), key=lambda kv: str(kv[0])))}",
            f"closes by code: {dict(sorted(self.closes.items()))}",
            f"/metrics bytes: {before[0]} -> {after[0]} (+{after[0] - before[0]})",
            f"/api/status bytes: {before[1]} -> {after[1]}; queues {before[2]} -> {after[2]}",
            f"violations: {sum(len(v) for v in self.violations.values())} in {len(self.violations)} kinds",
        ]
        for kind, details in sorted(self.violations.items()):
            lines.append(f"  {kind}: {len(details)}x, e.g. {details[0][:300]}")
        return "\n".join(lines)


def _public(sock: Sock, skill: str) -> dict[str, Any]:
    return {"name": sock.label, "topic": "", "skill": skill, "language": "en"}


def _family(frame: MessageFrame | RawFrame) -> str:
    """What kind of frame: its type, encoding and run-time values (how they were damaged)."""
    if isinstance(frame, RawFrame):
        return (frame.note or "raw text").split(" ")[0]
    kind = frame.message.get("type")
    parts = [kind if isinstance(kind, str) and kind.isascii() and len(kind) < 20 else "(bad type)"]
    if frame.encoding != "text":
        parts.append(frame.encoding)
    for name, value in frame.message.items():
        if isinstance(value, Ref):
            parts.append(f"{name}:{value.variant}/{value.damage}")
    return " ".join(parts)


def _short(data: str | bytes, limit: int = 160) -> str:
    text = repr(data)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(data)} {type(data).__name__})"


def _first_error(replies: list[dict[str, Any]], code: str) -> str:
    return next((str(m)[:200] for m in replies if m.get("code") == code), "")


class ServerErrors(logging.Handler):
    """Errors the server logs (exceptions swallowed by the timer, media tasks, uvicorn)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in ("telepresence", "media", "uvicorn"):
            self.records.append(record)


@contextlib.contextmanager
def server_errors():
    handler = ServerErrors()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


async def fuzz(tmp_path: Path, *, max_examples: int, max_actions: int) -> None:
    async with run_server(tmp_path, **FUZZ_SETTINGS) as server:
        fuzzer = Fuzzer(server, await canned_offer())
        loop = asyncio.get_running_loop()
        await fuzzer.start_bystander()
        # Warm up every label the server legitimately has (a call's receipt with every figure the
        # web client reports, both sides), so "before" already holds them.
        agent, customer = await fuzzer.call("warmup", stats={n: 1.0 for n in _web_client_stats()})
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


def _web_client_stats() -> list[str]:
    from tests.control.fuzz_strategies import WEB_CLIENT_STATS

    return WEB_CLIENT_STATS


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
            sock = fuzzer.socks = [await fuzzer.connect(f"burst{fuzzer.examples}")]
            sock = sock[0]
            for frame in batch:
                if isinstance(frame, MessageFrame):
                    data = encode(resolve(frame.message, fuzzer.lookup), frame.encoding)
                else:
                    data = frame.data
                if expect(data, fuzzer.max_bytes).close is not None:
                    continue  # this test is about the rate, not the size
                fuzzer.sent += 1
                if not await sock.send(data):
                    break
            # Settle: ping every 100 ms (the bucket refills 2 a tick) until a pong or the close.
            for _ in range(100):
                if sock.closed or not await sock.send('{"type": "ping"}'):
                    break
                if await sock.wait(lambda: sock.count("pong") > 0, 0.1):
                    break
            await sock.wait(lambda: sock.count("pong") > 0, 2)
            errors = [m.get("code") for m in sock.messages if m["type"] == "error"]
            for code in set(errors) - ERROR_CODES:
                fuzzer.violation(f"error code {code!r}", str(batch[:3])[:300])
            if sock.closed:
                fuzzer.closes[sock.close_code] += 1
                if sock.close_code not in CLOSE_CODES:
                    fuzzer.violation(f"close code {sock.close_code}", str(batch[:3])[:300])
            elif sock.count("pong") == 0:
                fuzzer.violation("hang: no pong after a burst", str(batch[:3])[:300])
            sent = len(batch)
            if sent > server.settings.rate_burst + 25:
                floods["big bursts"] += 1
                if "rate_limited" not in errors and sock.close_code != 1008:
                    fuzzer.violation("a burst over the limit was not rate limited", f"{sent} frames")
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
        # Ignore violations the main fuzz reports (internal and friends): this test is about the rate.
        rate_kinds = {
            k: v for k, v in fuzzer.violations.items() if "rate" in k or "close" in k or "hang" in k
        }
        assert not rate_kinds, rate_kinds


# ---------------------------------------------------------------- HTTP: /api/host


def authorization_values(server: LiveServer) -> st.SearchStrategy[bytes]:
    token = server.token("olga", role="operator")
    agent = server.token("sam")

    def spoil(text: str) -> st.SearchStrategy[bytes]:
        return st.builds(
            lambda how, at, char, codec: damage(text, how, at, char).encode(codec, "replace"),
            st.sampled_from(["flip", "truncate", "insert", "append", "no_dot", "swap_halves", "upper"]),
            st.integers(0, 500),
            st.sampled_from(["é", "😀", "中", "ÿ", "\x7f", "=", "."]),
            st.sampled_from(["utf-8", "latin-1"]),
        )

    scheme = st.sampled_from(
        [b"Bearer ", b"bearer ", b"BEARER  ", b"Basic ", b"Bearer", b"", b"Bearer\t", b"Token "]
    )
    body = st.one_of(
        spoil(token),
        st.just(agent.encode()),
        st.binary(max_size=60).filter(lambda b: b"\r" not in b and b"\n" not in b and b"\x00" not in b),
        st.sampled_from([b"", b".", b"a.b", b"\xff\xfe", "é.é".encode(), "Ölga".encode("latin-1")]),
        st.sampled_from([b"x" * 5_000, b"A" * 20_000 + b".B", b"\xc3\xa9" * 3_000]),
    )
    return st.builds(lambda s, b: s + b, scheme, body)


async def test_host_api_refuses_hostile_authorization_headers(tmp_path):
    """Never a 500: every hostile header gets 401 (or another 4xx)."""
    async with run_server(tmp_path) as server:
        statuses: Counter[int] = Counter()
        failures: list[str] = []

        @settings(max_examples=150, **HYPOTHESIS)
        @given(authorization_values(server), st.sampled_from(["GET", "POST"]))
        def one(header: bytes, method: str) -> None:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                try:
                    response = client.request(
                        method,
                        "/api/host",
                        headers={"Authorization": header},
                        json={"type": "host_interrupt"},
                    )
                except httpx.LocalProtocolError:
                    return  # the client refuses to send it: never reaches the server
                except httpx.RemoteProtocolError:
                    statuses[0] += 1  # the server hung up on a header it will not read: fine
                    return
            statuses[response.status_code] += 1
            if not 400 <= response.status_code < 500:
                failures.append(f"{method} {header[:80]!r} -> {response.status_code} {response.text[:120]}")

        await asyncio.to_thread(one)
        print(f"/api/host statuses: {dict(statuses)}")
        assert statuses[401] > 0
        assert not failures, "\n".join(failures[:10])
