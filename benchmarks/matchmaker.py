"""Suite "matchmaker": pairing decisions at contact-centre scale, and position fan-out over WebSockets.

(a) Decisions. One Matchmaker holds 10,000 waiting customers over 21 queues (5 skills x
    4 languages, and the general queue) and 500 agents with two skills and one or two
    languages each, every one of them in a call. A random mix of what a busy floor does is
    timed one call at a time, the queue kept at 10,000: a customer joins (every agent busy),
    a returning customer joins (their agent busy: the choice with both waits), one chooses
    the next available, a call ends (the agent's seat goes to the earliest eligible
    customer), an agent accepts, declines (the customer goes on, the agent takes the next),
    comes back from wrap-up (takes the next), lets an offer time out (``tick``), and a
    waiting customer leaves. Also timed: what the switchboard reads after a decision to
    push positions, ``statuses()`` of the queues ``take_changed_queues()`` names (sampled),
    and ``statuses()`` of all 10,000 (what it read after every message before).

(b) Fan-out. A real server (uvicorn, the app as ``telepresence serve`` builds it) runs on
    loopback in its own process; 1,000 customer WebSockets (the ``websockets`` client, in
    this process) join one queue behind a few more customers. Each event is the head
    customer leaving, which moves everybody's position: timed from sending ``leave`` until
    every one of the 1,000 sockets has read its new ``queue_status``. A second server with
    permessage-deflate off runs alongside, events interleaved, for comparison; both report
    their memory per socket.

Targets (issue 3): decision p95 < 1 ms, fan-out p95 < 100 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import random
import resource
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.progress import progress
from telepresence.routing import CustomerState, HandleTimes, Matchmaker, OfferMade, QueueKey

SKILLS = ("billing", "tech", "sales", "returns", "accounts")
LANGUAGES = ("en", "fr", "de", "es")
QUEUES = [QueueKey()] + [QueueKey(s, lang) for s in SKILLS for lang in LANGUAGES]
WAITING = 10_000
AGENTS = 500
SOCKETS = 1_000


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ------------------------------------------------------------ (a) decisions


class _Floor:
    """A busy contact centre around one Matchmaker, with a fake clock."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.now = 0.0
        self.mm = Matchmaker(
            offer_timeout_s=20,
            affinity_window_s=300,
            decline_cooloff_s=60,
            handle_times=HandleTimes(prior_s=240),
        )
        self.next_id = 0
        self.in_call: dict[str, str] = {}  # customer -> agent
        self.offers: dict[str, str] = {}  # offer id -> agent
        self.agents = [f"agent-{i}" for i in range(AGENTS)]
        self.publish_times: list[float] = []
        self.decisions = 0
        for agent_id in self.agents:
            self.mm.add_agent(
                agent_id,
                self.tick_clock(),
                skills=rng.sample(SKILLS, 2),
                languages=rng.sample(LANGUAGES, rng.choice((1, 2))),
                available=True,
            )
        # Fill every seat, then the queues: general traffic a fifth, the rest spread evenly.
        while len(self.in_call) < AGENTS or self.waiting() < WAITING:
            self.track(self.mm.enqueue(self.new_id(), self.random_key(), self.tick_clock()))
            self.accept_all()
        self.mm.take_changed_queues()

    def tick_clock(self) -> float:
        self.now += 0.01
        return self.now

    def new_id(self) -> str:
        self.next_id += 1
        return f"cust-{self.next_id}"

    def random_key(self) -> QueueKey:
        return QueueKey() if self.rng.random() < 0.2 else self.rng.choice(QUEUES[1:])

    def waiting(self) -> int:
        return len(self.mm._customers) - len(self.in_call) - len(self.offers)  # noqa: SLF001 - sizes only

    def track(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, OfferMade):
                self.offers[event.offer_id] = event.agent_id

    def accept_all(self) -> None:
        for offer_id, agent_id in list(self.offers.items()):
            customer_id, _, _ = self.mm.offer(offer_id)  # type: ignore[misc]
            self.mm.accept(offer_id, agent_id, self.now)
            del self.offers[offer_id]
            self.in_call[customer_id] = agent_id

    def waiting_customer(self) -> str:
        while True:
            customer_id = f"cust-{self.rng.randint(1, self.next_id)}"
            if self.mm.customer_state(customer_id) is CustomerState.WAITING:
                return customer_id

    def refill(self) -> None:
        """Keep 10,000 waiting (untimed)."""
        while self.waiting() < WAITING:
            self.track(self.mm.enqueue(self.new_id(), self.random_key(), self.tick_clock()))

    def one_decision(self, kind: str) -> float:
        """Set up, then time exactly one matchmaker call of ``kind``; seconds."""
        mm, now = self.mm, self.tick_clock()
        clock = time.perf_counter
        if kind == "enqueue":
            customer_id, key = self.new_id(), self.random_key()
            start = clock()
            events = mm.enqueue(customer_id, key, now)
        elif kind in ("enqueue_returning", "choose_any"):
            customer_id, agent_id = self.new_id(), self.rng.choice(self.agents)
            key = self.rng.choice([QueueKey()] + [k for k in QUEUES[1:] if mm._agents[agent_id].serves(k)])  # noqa: SLF001
            start = clock()
            events = mm.enqueue(customer_id, key, now, last_agent=agent_id)
            if kind == "choose_any":
                start = clock()
                events = mm.choose(customer_id, False, now)
        elif kind == "leave":
            customer_id = self.waiting_customer()
            start = clock()
            events = mm.leave(customer_id, now)
        elif kind in ("end_call", "accept", "decline", "timeout"):
            customer_id = self.rng.choice(list(self.in_call))
            agent_id = self.in_call.pop(customer_id)
            start = clock()
            events = mm.end_call(customer_id, now)  # the agent takes the next customer
            if kind != "end_call":
                (offer_id,) = [e.offer_id for e in events if isinstance(e, OfferMade)]
                if kind == "accept":
                    start = clock()
                    events = mm.accept(offer_id, agent_id, now)
                elif kind == "decline":
                    start = clock()
                    events = mm.decline(offer_id, agent_id, now)
                else:
                    now = self.now = self.now + mm.offer_timeout_s
                    start = clock()
                    events = mm.tick(now)
        elif kind == "back_from_wrap_up":
            customer_id = self.rng.choice(list(self.in_call))
            agent_id = self.in_call.pop(customer_id)
            mm.set_available(agent_id, False, now)
            mm.end_call(customer_id, now)  # wrap-up: no new offer yet
            start = clock()
            events = mm.set_available(agent_id, True, now)
        else:
            raise ValueError(kind)
        elapsed = clock() - start
        # What the switchboard does next: read the statuses of the queues that changed
        # (sampled: at 10,000 waiting it costs more than the decision itself).
        if len(self.publish_times) * 4 <= self.decisions:
            start = clock()
            mm.statuses(now, mm.take_changed_queues())
            self.publish_times.append(clock() - start)
        self.decisions += 1
        if kind == "accept":
            self.in_call[events[0].customer_id] = agent_id
            events = []
        self.track(events)
        self.accept_all()
        self.refill()
        mm.take_changed_queues()  # the set-up's changes are not the next decision's
        return elapsed


KINDS = (
    "enqueue",
    "enqueue_returning",
    "choose_any",
    "end_call",
    "accept",
    "decline",
    "timeout",
    "back_from_wrap_up",
    "leave",
)


def bench_decisions(samples: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    build = time.perf_counter()
    floor = _Floor(rng)
    build_s = time.perf_counter() - build
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in progress(range(samples), desc="decisions", total=samples):
        kind = rng.choice(KINDS)
        times[kind].append(floor.one_decision(kind) * 1000)
    everything = [t for values in times.values() for t in values]
    statuses_ms = []
    for _ in range(5 if samples < 5000 else 20):
        start = time.perf_counter()
        floor.mm.statuses(floor.now)
        statuses_ms.append((time.perf_counter() - start) * 1000)
    return {
        "customers_waiting": floor.waiting(),
        "agents": AGENTS,
        "queues": len(QUEUES),
        "decisions": len(everything),
        "decision_p50_ms": round(_pct(everything, 0.50), 4),
        "decision_p95_ms": round(_pct(everything, 0.95), 4),
        "decision_max_ms": round(max(everything), 3),
        "decision_p95_ms_by_kind": {k: round(_pct(v, 0.95), 4) for k, v in times.items() if v},
        "statuses_all_ms": round(statistics.median(statuses_ms), 2),
        "statuses_changed_p50_ms": round(_pct(floor.publish_times, 0.50) * 1000, 3),
        "statuses_changed_p95_ms": round(_pct(floor.publish_times, 0.95) * 1000, 3),
        "setup_s": round(build_s, 2),
    }


# -------------------------------------------------------------- (b) fan-out


def _serve(port: int, state_dir: str, per_message_deflate: bool = True) -> None:
    """The server process: the app as ``telepresence serve`` runs it (uvicorn defaults)."""
    import uvicorn

    from telepresence.app import create_app
    from telepresence.config import Settings

    settings = Settings.load(
        env={},
        state_dir=Path(state_dir),
        secret="bench-secret-0123456789abcdef",
        port=port,
        log_level="warning",
    )
    app = create_app(settings)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws_max_size=settings.max_message_bytes + 1024,
        timeout_graceful_shutdown=2,
        ws_per_message_deflate=per_message_deflate,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise RuntimeError(f"need {needed} open files, the limit is {soft} (ulimit -n)")


class _Socket:
    """One customer socket: a reader task notes each queue_status position as it arrives."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.position: int | None = None
        self.target: int | None = None
        self.arrived_at = 0.0
        self.round: _Round | None = None
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                message = json.loads(raw)
                if message["type"] != "queue_status":
                    continue
                self.position = message["position"]
                if self.round is not None and self.position == self.target:
                    self.arrived_at = time.perf_counter()
                    self.round.arrived()

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


class _Round:
    def __init__(self, count: int) -> None:
        self.left = count
        self.done = asyncio.Event()

    def arrived(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.done.set()


async def _join(url: str, name: str) -> _Socket:
    import websockets

    ws = await websockets.connect(url, max_size=None, open_timeout=30)
    await ws.send(json.dumps({"type": "join", "name": name, "topic": "fan-out"}))
    sock = _Socket(ws)
    for _ in range(500):
        if sock.position is not None:
            return sock
        await asyncio.sleep(0.01)
    raise RuntimeError(f"{name}: no queue_status after joining")


WARM_UP = 2  # untimed events first: the first ones pay for lazy set-up


def _rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


class _Server:
    """One server process on loopback with its customer sockets: the heads, then 1,000 more."""

    def __init__(self, *, per_message_deflate: bool) -> None:
        self.port = _free_port()
        self.state_dir = tempfile.TemporaryDirectory()
        self.process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(self.port, self.state_dir.name, per_message_deflate), daemon=True
        )
        self.heads: list[_Socket] = []
        self.watchers: list[_Socket] = []
        self.idle_mb: float | None = None
        self.total_ms: list[float] = []
        self.first_ms: list[float] = []

    async def start(self) -> None:
        self.process.start()
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                break
            if not self.process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the benchmark server did not start")
            await asyncio.sleep(0.05)
        self.idle_mb = _rss_mb(self.process.pid)  # type: ignore[arg-type]

    async def connect(self, heads: int, desc: str) -> None:
        url = f"ws://127.0.0.1:{self.port}/ws"
        self.heads = [await _join(url, f"head-{i}") for i in range(heads)]  # first in the queue
        batch = 50
        for start in progress(range(0, SOCKETS, batch), desc=f"connecting ({desc})", total=SOCKETS // batch):
            count = min(batch, SOCKETS - start)
            self.watchers += await asyncio.gather(
                *(_join(url, f"customer-{start + i}") for i in range(count))
            )
        await asyncio.sleep(0.5)  # let every join's updates land
        expected = list(range(heads + 1, heads + SOCKETS + 1))
        assert sorted(w.position for w in self.watchers) == expected  # type: ignore[type-var]

    async def head_leaves(self, index: int, record: bool) -> None:
        """The head customer leaves: time until every watcher has read its new position."""
        round_ = _Round(len(self.watchers))
        for watcher in self.watchers:
            watcher.target = watcher.position - 1  # type: ignore[operator]
            watcher.round = round_
        sent = time.perf_counter()
        await self.heads[index].ws.send(json.dumps({"type": "leave"}))
        await asyncio.wait_for(round_.done.wait(), 30)
        for watcher in self.watchers:
            watcher.round = None
        if record:
            arrivals = [w.arrived_at - sent for w in self.watchers]
            self.total_ms.append(max(arrivals) * 1000)
            self.first_ms.append(min(arrivals) * 1000)

    def summary(self) -> dict[str, Any]:
        rss_mb = _rss_mb(self.process.pid)  # type: ignore[arg-type]
        per_socket = None
        if rss_mb is not None and self.idle_mb is not None:
            per_socket = round((rss_mb - self.idle_mb) * 1024 / (len(self.heads) + len(self.watchers)))
        return {
            "p50_ms": round(_pct(self.total_ms, 0.50), 2),
            "p95_ms": round(_pct(self.total_ms, 0.95), 2),
            "max_ms": round(max(self.total_ms), 2),
            "first_socket_p50_ms": round(_pct(self.first_ms, 0.50), 2),
            "server_rss_mb": rss_mb,
            "server_kb_per_socket": per_socket,
        }

    async def close(self) -> None:
        # The server goes first: 1,000 customers dropping one by one would each move the
        # others' places, which is work (and log noise) nobody is measuring.
        if self.process.is_alive():
            self.process.kill()
        self.process.join(10)
        await asyncio.gather(*(s.close() for s in self.heads + self.watchers), return_exceptions=True)
        self.state_dir.cleanup()


async def _fanout(events: int) -> dict[str, Any]:
    """The server as ``telepresence serve`` runs it, and the same with permessage-deflate off
    (uvicorn ``ws_per_message_deflate=False``), their events interleaved so load hits both alike."""
    heads = events + WARM_UP
    _raise_fd_limit(2 * (SOCKETS + heads) + 256)
    servers = {
        "fanout": _Server(per_message_deflate=True),
        "fanout_no_deflate": _Server(per_message_deflate=False),
    }
    try:
        for name, server in servers.items():
            await server.start()
            await server.connect(heads, name)
        for index in progress(range(heads), desc="fan-out", total=heads):
            for server in servers.values():
                await server.head_leaves(index, record=index >= WARM_UP)
                await asyncio.sleep(0.05)
        summary: dict[str, Any] = {"sockets": SOCKETS, "fanout_events": events}
        for name, server in servers.items():
            summary.update({f"{name}_{key}": value for key, value in server.summary().items()})
        return summary
    finally:
        for server in servers.values():
            await server.close()


def run(quick: bool) -> dict[str, Any]:
    summary = bench_decisions(2_000 if quick else 20_000)
    summary.update(asyncio.run(_fanout(20 if quick else 100)))
    summary["targets"] = {"decision_p95_ms": 1.0, "fanout_p95_ms": 100.0}
    return summary
