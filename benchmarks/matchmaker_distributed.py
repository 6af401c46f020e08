"""Suite "matchmaker", part (c): the same centre on three processes through Redis (issue 12).

One ``redis-server`` (append-only) and three ``telepresence serve --redis`` processes on
loopback (no media workers, admission off); the clients are spread round-robin over the
three. The centre is filled with ``waiting`` customers and ``agents`` logged-in agents:

- ``sockets`` watching customers (one queue, behind a few "heads") keep their sockets open;
  they are held by one client process per serve process
  (:mod:`benchmarks.matchmaker_distributed_watchers`);
- the rest of the waiting customers are "silent": they join 20 skill/language queues that
  no available agent serves, held (and their messages dropped) by the same client
  processes. They keep their sockets open: a customer whose socket closes is SUSPENDED
  (keeps a place to rejoin, but is not waiting: nobody's position counts them, and each
  costs the leader an agents scan at every status push of their queue);
- all agents keep their sockets open (an agent whose socket closes drops): most are
  ``away``; a few, each with a skill of their own, take the decisions.

Timed, one at a time, in this process:

- **decision to socket**: a customer joins an agent's queue on ANOTHER process than the
  agent's, until the ``offer`` arrives at the agent; the agent accepts, until
  ``call_started`` arrives at the customer (then the call ends, untimed);
- **fan-out**: the head of the watched queue leaves, until every watching socket on all
  three processes has read its new ``queue_status`` (``distributed_fanout_*``); also until
  the last of them had its bytes in its kernel (``distributed_fanout_delivered_*``: the
  server side's share, without the readers' own turn on the two cores they share).

Targets (issue 12): decision to socket p95 < 50 ms, fan-out p95 < 150 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.matchmaker_decisions import LANGUAGES, SKILLS, pct
from benchmarks.matchmaker_distributed_procs import SECRET, Processes, cpu_seconds
from benchmarks.matchmaker_distributed_watchers import WatcherProcesses
from benchmarks.matchmaker_fanout import _raise_fd_limit
from benchmarks.progress import progress

PROCESSES = 3
DECIDERS = 6  # two agents per process take the decisions, in turn
WARM_UP = 2  # untimed fan-out events first
IN_FLIGHT = 100  # logins at a time


@dataclass(frozen=True)
class Size:
    waiting: int
    agents: int
    sockets: int
    cycles: int  # decision cycles: two samples each
    events: int  # fan-out events
    label: str
    # The leader's snapshot_every_steps (None: the default). A tiny run sets 1: each of its
    # few steps is followed by a snapshot, which the fan-out's snapshot count must see.
    snapshot_every_steps: int | None = None


FULL = Size(waiting=10_000, agents=500, sockets=3_000, cycles=120, events=20, label="full")
QUICK = Size(waiting=2_000, agents=100, sockets=600, cycles=30, events=5, label="quick")


class _Client:
    """A socket of this process; every message it reads is kept with its arrival time."""

    def __init__(self, ws: Any, keep: bool = True) -> None:
        self.ws = ws
        self.keep = keep
        self.inbox: list[tuple[float, dict[str, Any]]] = []
        self._seen = 0
        self._more = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str, keep: bool = True) -> _Client:
        import websockets

        return cls(await websockets.connect(url, max_size=None, open_timeout=60, ping_interval=None), keep)

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                if self.keep:
                    self.inbox.append((time.perf_counter(), json.loads(raw)))
                    self._more.set()

    async def send(self, type: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": type, **fields}))

    async def expect(self, type: str, timeout_s: float = 60.0) -> tuple[float, dict[str, Any]]:
        """The next message of ``type`` not yet expected, and when it arrived."""
        deadline = time.monotonic() + timeout_s
        while True:
            while self._seen < len(self.inbox):
                at, message = self.inbox[self._seen]
                self._seen += 1
                if message.get("type") == type:
                    return at, message
                if message.get("type") == "error":
                    raise RuntimeError(f"expecting {type}: {message}")
            self._more.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"no {type} within {timeout_s} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._more.wait(), remaining)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


def _token(name: str, skills: tuple[str, ...], languages: tuple[str, ...]) -> str:
    from telepresence.auth import Claims, TokenAuthority

    claims = Claims(
        name=name, role="agent", skills=skills, languages=languages, expires_at=time.time() + 86_400
    )
    return TokenAuthority(SECRET.encode()).mint(claims)


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _ms(values: list[float], q: float) -> float:
    return round(pct(values, q) * 1000, 2)


class _Run:
    """One distributed run: the processes, the fill, the two measurements."""

    def __init__(self, size: Size, directory: Path) -> None:
        self.size = size
        every = size.snapshot_every_steps
        self.procs = Processes(PROCESSES, directory, **({} if every is None else {"snapshot_every_steps": every}))
        self.heads = size.events + WARM_UP
        self.agents: list[_Client] = []
        self.deciders: list[tuple[int, _Client]] = []  # (process index, socket)
        self.head_sockets: list[_Client] = []
        self.watchers: WatcherProcesses | None = None
        self.silent = size.waiting - size.sockets - self.heads
        if self.silent < 0:
            raise ValueError(
                f"{size.waiting} waiting cannot hold {size.sockets} sockets and {self.heads} heads"
            )

    def url(self, index: int) -> str:
        return self.procs.ws_urls[index % PROCESSES]

    def http(self, index: int) -> str:
        return f"http://127.0.0.1:{self.procs.ports[index % PROCESSES]}"

    # ------------------------------------------------------------------ fill

    async def fill(self) -> None:
        await asyncio.to_thread(self.procs.start)
        await self._agents()
        for index in range(self.heads):  # in order: they are places 1..heads
            head = await _Client.connect(self.url(index))
            await head.send("join", name=f"head-{index}", skill="fanout")
            await head.expect("queue_status")
            self.head_sockets.append(head)
        shares = [len(range(i, self.size.sockets, PROCESSES)) for i in range(PROCESSES)]
        queues = [(skill, language) for skill in SKILLS for language in LANGUAGES]
        silent = [
            [queues[i % len(queues)] for i in range(p, self.silent, PROCESSES)] for p in range(PROCESSES)
        ]
        self.watchers = WatcherProcesses(self.procs.ws_urls, shares, silent)
        positions = await self.watchers.start()
        expected = list(range(self.heads + 1, self.heads + self.size.sockets + 1))
        if sorted(positions) != expected:
            raise RuntimeError("the watching customers were not told distinct places behind the heads")

    async def _agents(self) -> None:
        limit = asyncio.Semaphore(IN_FLIGHT)

        async def login(index: int) -> _Client:
            async with limit:
                decider = index < DECIDERS
                skills = (f"decide{index}",) if decider else (SKILLS[index % 5], SKILLS[(index + 2) % 5])
                agent = await _Client.connect(self.url(index))
                await agent.send("login", token=_token(f"agent-{index}", skills, (LANGUAGES[index % 4],)))
                await agent.expect("logged_in")
                if decider:
                    await agent.send("set_status", status="available")
                    await agent.expect("agent_status")
                else:  # away: what it is told from now on is read and dropped
                    agent.keep = False
                    agent.inbox.clear()
                return agent

        count = self.size.agents
        self.agents = await asyncio.gather(*(login(i) for i in range(count)))
        self.deciders = [(i % PROCESSES, self.agents[i]) for i in range(DECIDERS)]

    async def waiting(self) -> int:
        """Everybody waiting, as /api/status says (once every join and close is applied)."""
        status = await asyncio.to_thread(_get_json, f"{self.http(0)}/api/status")
        return sum(q["waiting"] for q in status["queues"])

    async def leader(self) -> int:
        status = await asyncio.to_thread(_get_json, f"{self.http(0)}/api/status")
        return self.procs.ports.index(int(status["leader"].rpartition(":")[2]))

    # ------------------------------------------------------------- decisions

    async def decisions(self) -> dict[str, list[float]]:
        samples: dict[str, list[float]] = {"join_to_offer": [], "accept_to_call_started": []}
        for cycle in progress(range(self.size.cycles), desc="decisions", total=self.size.cycles):
            index = cycle % DECIDERS
            where, agent = self.deciders[index]
            customer_at = where + 1 + (cycle // DECIDERS) % 2  # the other two processes in turn
            customer = await _Client.connect(self.url(customer_at))
            sent = time.perf_counter()
            await customer.send("join", name=f"caller-{cycle}", skill=f"decide{index}")
            arrived, offer = await agent.expect("offer")
            samples["join_to_offer"].append(arrived - sent)
            sent = time.perf_counter()
            await agent.send("accept", offer_id=offer["offer_id"])
            arrived, _ = await customer.expect("call_started")
            samples["accept_to_call_started"].append(arrived - sent)
            await customer.send("end_call")
            await agent.expect("call_ended")
            await agent.expect("agent_status")  # available again (no wrap-up)
            await customer.expect("call_ended")
            await customer.close()
        return samples

    # --------------------------------------------------------------- fan-out

    async def fanout(self) -> dict[str, list[float]]:
        """Per event: the last and the first socket's read, and the last socket's delivery
        (the kernel's receive stamp: the server side's fan-out, without the readers' turn)."""
        from redis.asyncio import Redis

        assert self.watchers is not None
        samples: dict[str, list[float]] = {"last": [], "first": [], "delivered": [], "snapshot": []}
        redis = Redis.from_url(self.procs.redis_url)
        try:
            first_step = await self._first_step(redis)
            for index in progress(range(self.heads), desc="fan-out", total=self.heads):
                await self.watchers.arm()
                sent, sent_wall = time.perf_counter(), time.time()
                await self.head_sockets[index].send("leave")
                arrivals = await self.watchers.arrivals()
                # A snapshot trims the step log up to its own step: the log's first entry moved.
                step = await self._first_step(redis)
                if index >= WARM_UP:
                    samples["last"].append(arrivals.last_read - sent)
                    samples["first"].append(arrivals.first_read - sent)
                    if arrivals.last_delivered:
                        samples["delivered"].append(arrivals.last_delivered - sent_wall)
                    if step != first_step:
                        samples["snapshot"].append(arrivals.last_read - sent)
                first_step = step
                await asyncio.sleep(0.1)
        finally:
            await redis.aclose()
        return samples

    @staticmethod
    async def _first_step(redis: Any) -> bytes | None:
        from telepresence.centre import keys

        first = await redis.xrange(keys.STEPS, count=1)
        return first[0][0] if first else None

    async def snapshot_kb(self) -> float | None:
        from redis.asyncio import Redis

        from telepresence.centre import keys

        redis = Redis.from_url(self.procs.redis_url)
        try:
            return round(await redis.strlen(keys.SNAPSHOT) / 1024, 1)
        finally:
            await redis.aclose()

    async def close(self) -> None:
        self.procs.stop()  # first: nobody's goodbye is measured
        if self.watchers is not None:
            await asyncio.to_thread(self.watchers.stop)
        await asyncio.gather(*(c.close() for c in self.agents + self.head_sockets), return_exceptions=True)


def _cpu_ms(pids: list[int], before: list[float | None], per: int) -> list[float | None]:
    after = [cpu_seconds(pid) for pid in pids]
    return [
        None if a is None or b is None else round((a - b) * 1000 / per, 1)
        for a, b in zip(after, before, strict=True)
    ]


async def bench_distributed(size: Size) -> dict[str, Any]:
    """Fill the centre, time decisions then fan-out; every key starts ``distributed_``."""
    # Per process: a serve process (which inherits the limit) or a client process holds a
    # third of the customers' sockets; this one the agents'.
    _raise_fd_limit(size.waiting // PROCESSES + size.agents + size.events + 1024)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tp-bench-distributed-") as directory:
        run = _Run(size, Path(directory))
        try:
            await run.fill()
            waiting = await run.waiting()
            fill_s = time.perf_counter() - started
            leader = await run.leader()
            pids = run.procs.pids
            before = [cpu_seconds(pid) for pid in pids]
            samples = await run.decisions()
            decision_cpu = _cpu_ms(pids, before, size.cycles)
            assert run.watchers is not None
            readers = run.watchers.pids
            before = [cpu_seconds(pid) for pid in pids + readers]
            fanout = await run.fanout()
            fanout_cpu = _cpu_ms(pids + readers, before, run.heads)
            snapshot_kb = await run.snapshot_kb()
        except Exception as exc:
            raise RuntimeError(f"the distributed run failed: {exc}\n{run.procs.logs()}") from exc
        finally:
            await run.close()
    everything = [s for values in samples.values() for s in values]
    totals, delivered = fanout["last"], fanout["delivered"]
    return {
        "distributed_size": size.label,
        "distributed_processes": PROCESSES,
        "distributed_waiting": waiting,
        "distributed_open_sockets": size.waiting + size.agents,  # every customer's and agent's
        "distributed_agents": size.agents,
        "distributed_decision_samples": len(everything),
        "distributed_decision_p50_ms": _ms(everything, 0.50),
        "distributed_decision_p95_ms": _ms(everything, 0.95),
        "distributed_decision_max_ms": round(max(everything) * 1000, 2),
        "distributed_decision_p95_ms_by_kind": {kind: _ms(values, 0.95) for kind, values in samples.items()},
        "distributed_decision_p50_ms_by_kind": {kind: _ms(values, 0.50) for kind, values in samples.items()},
        "distributed_fanout_sockets": size.sockets,
        "distributed_fanout_events": len(totals),
        "distributed_fanout_p50_ms": _ms(totals, 0.50),
        "distributed_fanout_p95_ms": _ms(totals, 0.95),
        "distributed_fanout_max_ms": round(max(totals) * 1000, 2),
        "distributed_fanout_first_socket_p50_ms": _ms(fanout["first"], 0.50),
        # Events in which the leader wrote a snapshot (a 4 MB pickle on the step path), and theirs.
        "distributed_fanout_snapshot_events": len(fanout["snapshot"]),
        "distributed_fanout_snapshot_event_ms": [round(t * 1000, 2) for t in fanout["snapshot"]],
        # The last socket's bytes in its kernel (no reader's turn on the cores): n, p50, p95.
        "distributed_fanout_delivered_events": len(delivered),
        "distributed_fanout_delivered_p50_ms": _ms(delivered, 0.50) if delivered else None,
        "distributed_fanout_delivered_p95_ms": _ms(delivered, 0.95) if delivered else None,
        # Where the time goes: CPU of each serve process per decision cycle / fan-out event;
        # the leader's index is distributed_leader.
        "distributed_leader": leader,
        "distributed_cpu_ms_per_decision_cycle": decision_cpu,
        "distributed_cpu_ms_per_fanout_event": fanout_cpu[:PROCESSES],
        # The benchmark's three reader processes (the customers' side), per fan-out event.
        "distributed_reader_cpu_ms_per_fanout_event": fanout_cpu[PROCESSES:],
        "distributed_snapshot_kb": snapshot_kb,
        "distributed_fill_s": round(fill_s, 1),
        "distributed_run_s": round(time.perf_counter() - started, 1),
    }
