"""The fuzzer's runner: programs played over sockets in their roles, violations collected.

:class:`Fuzzer` sets a program's sockets up in its role, sends each frame and then a
``ping`` as the barrier (its ``pong``, or the socket's close, says the frame was
handled), checks the replies against the oracle (tests/fuzz/contract.py) and collects
every violation with the frame that shows it. Around the programs: a bystander customer
who must keep their place and ticket, the sizes of /metrics and /api/status, and the
errors the server logs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections import Counter
from typing import Any

import httpx
import websockets
from hypothesis import HealthCheck, Phase

from tests.conftest import LiveServer
from tests.fuzz import run_time_values
from tests.fuzz.contract import CLOSE_CODES, ENTRY_TYPES, ERROR_CODES, Expectation, expect
from tests.fuzz.frame_strategies import MessageFrame, Program, RawFrame, encode
from tests.fuzz.message_strategies import LANGUAGE_WORDS
from tests.fuzz.run_time_values import Ref, resolve
from tests.fuzz.sockets import Sock

REPLY_TIMEOUT_S = 10.0
BYSTANDER_QUEUE = {"skill": "bystander", "language": "zz"}  # a queue no fuzzed agent serves
HYPOTHESIS = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    "phases": [Phase.explicit, Phase.generate],  # every violation is collected: nothing to shrink
    "suppress_health_check": list(HealthCheck),
    "print_blob": False,
}


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
        self.socks: list[Sock] = []

    def violation(self, kind: str, detail: str) -> None:
        self.violations.setdefault(kind, []).append(detail)

    def hang(self, sock: Sock) -> None:
        self.violation("hang: no pong within the timeout", f"{sock.label}: {sock.messages[-3:]}")

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
        offer = await agent.expect("offer", customer=_public(customer, "fuzzcall"))
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

    async def settle(self, sock: Sock, start: int, expectation: Expectation) -> bool:
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
                self.hang(sock)
            return False
        may_pong = expectation.message_type == "ping" or (expectation.codes and not expectation.ok)
        if len(pongs()) >= 2 or not may_pong or not frame_ponged():
            return True
        timeout = REPLY_TIMEOUT_S if expectation.message_type == "ping" else 2.0
        if await sock.wait(lambda: len(pongs()) >= 2, timeout):
            return True
        if expectation.message_type == "ping" and not sock.closed:
            self.hang(sock)
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
            self.hang(sock)
        return False

    # ------------------------------------------------------------ programs

    async def setup(self, program: Program, n: int) -> list[Sock]:
        label = f"fz{n}"
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

    def data(self, frame: MessageFrame | RawFrame) -> str | bytes:
        """What goes on the wire for ``frame``: a message with its run-time values, encoded."""
        if isinstance(frame, MessageFrame):
            return encode(resolve(frame.message, self.lookup), frame.encoding)
        return frame.data

    async def exchange(self, sock: Sock, frame: MessageFrame | RawFrame) -> None:
        data = self.data(frame)
        if isinstance(frame, MessageFrame):
            shown = f"{frame.encoding}: {_short(data)}"
        else:
            shown = f"{frame.note or 'raw'}: {_short(data)}"
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
        return run_time_values.lookup(self, ref)

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
    # uvicorn's loggers do not propagate to the root logger: listen to them directly.
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
