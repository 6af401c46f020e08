"""Suite "matchmaker", part (b): position fan-out over WebSockets to a real server on loopback.

See :mod:`benchmarks.matchmaker` for what is timed and the targets. At full scale the server
holds 10,000 waiting customers and 500 agents, like the decisions' floor: the heads (this
process) and the 1,000 watching sockets in one queue, the others in 20 skill/language queues,
and the agents logged in and away (this process). The watchers and the others are held by a
client process of their own, the distributed run's lean readers
(:mod:`benchmarks.matchmaker_distributed_watchers`: one epoll loop, every frame parsed and every
message decoded, ~15-20 us a message where the ``websockets`` client here took ~50 us, on the
same two cores as the server it measures), which also report when the kernel received each
last message (``delivered``: the server's side of the fan-out, without the readers' turn).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.matchmaker_decisions import LANGUAGES, SKILLS, pct
from benchmarks.matchmaker_distributed_watchers import WATCHED, WatcherProcesses
from benchmarks.progress import progress

SOCKETS = 1_000
SECRET = "bench-secret-0123456789abcdef"
AGENTS_IN_FLIGHT = 100  # logins at a time


def _serve(port: int, state_dir: str, per_message_deflate: bool = True) -> None:
    """The server process: the app as ``telepresence serve`` runs it (uvicorn defaults), with its
    rooms in this process (``media_workers=0``): no call starts here, and a daemonic process may
    not have children."""
    import uvicorn

    from telepresence.app import create_app
    from telepresence.config import Settings

    settings = Settings.load(
        env={},
        state_dir=Path(state_dir),
        secret=SECRET,
        port=port,
        log_level="warning",
        media_workers=0,
        # Nothing expires during a run: agents stay logged in, offers (none are made) wait.
        agent_grace_s=3600,
        rejoin_grace_s=3600,
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
    """A head of the queue's socket: a reader task notes each queue_status position."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.position: int | None = None
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                message = json.loads(raw)
                if message["type"] == "queue_status":
                    self.position = message["position"]

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


async def _join(url: str, name: str) -> _Socket:
    import websockets

    ws = await websockets.connect(url, max_size=None, open_timeout=30)
    skill, language = WATCHED  # the watchers' queue
    await ws.send(json.dumps({"type": "join", "name": name, "skill": skill, "language": language}))
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


async def _login_away(url: str, index: int) -> Any:
    """An agent logged in and away (their skills name the silent customers' queues)."""
    import websockets

    from benchmarks.matchmaker_distributed import _token

    ws = await websockets.connect(url, max_size=None, open_timeout=60, ping_interval=None)
    skills = (SKILLS[index % 5], SKILLS[(index + 2) % 5])
    await ws.send(
        json.dumps({"type": "login", "token": _token(f"agent-{index}", skills, (LANGUAGES[index % 4],))})
    )
    while json.loads(await asyncio.wait_for(ws.recv(), 60))["type"] != "logged_in":
        pass
    return ws


class _Server:
    """One server process on loopback: agents, the heads, 1,000 watchers, and the silent rest."""

    def __init__(self, *, per_message_deflate: bool, waiting: int, agents: int) -> None:
        self.port = _free_port()
        self.state_dir = tempfile.TemporaryDirectory()
        self.process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(self.port, self.state_dir.name, per_message_deflate), daemon=True
        )
        self.waiting = waiting
        self.agent_count = agents
        self.agents: list[Any] = []
        self.watchers: WatcherProcesses | None = None  # the 1,000 watchers and the silent rest
        self.heads: list[_Socket] = []
        self.idle_mb: float | None = None
        self.total_ms: list[float] = []
        self.first_ms: list[float] = []
        self.delivered_ms: list[float] = []

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
        limit = asyncio.Semaphore(AGENTS_IN_FLIGHT)

        async def login(index: int) -> Any:
            async with limit:
                return await _login_away(url, index)

        self.agents = list(await asyncio.gather(*(login(i) for i in range(self.agent_count))))
        self.heads = [await _join(url, f"head-{i}") for i in range(heads)]  # first in the queue
        silent = max(0, self.waiting - heads - SOCKETS)
        queues = [(skill, language) for skill in SKILLS for language in LANGUAGES]
        self.watchers = WatcherProcesses([url], [SOCKETS], [[queues[i % len(queues)] for i in range(silent)]])
        print(f"connecting ({desc}): {SOCKETS} watchers and {silent} others", file=sys.stderr)
        positions = await self.watchers.start()
        expected = list(range(heads + 1, heads + SOCKETS + 1))
        if sorted(positions) != expected:
            raise RuntimeError("the watching customers were not told distinct places behind the heads")

    async def head_leaves(self, index: int, record: bool) -> None:
        """The head customer leaves: time until every watcher has read its new position (and
        until the kernel had received the last one's bytes: ``delivered``)."""
        assert self.watchers is not None
        await self.watchers.arm()
        sent, sent_wall = time.perf_counter(), time.time()
        await self.heads[index].ws.send(json.dumps({"type": "leave"}))
        arrivals = await self.watchers.arrivals()
        if record:
            self.total_ms.append((arrivals.last_read - sent) * 1000)
            self.first_ms.append((arrivals.first_read - sent) * 1000)
            if arrivals.last_delivered:
                self.delivered_ms.append((arrivals.last_delivered - sent_wall) * 1000)

    def summary(self) -> dict[str, Any]:
        rss_mb = _rss_mb(self.process.pid)  # type: ignore[arg-type]
        per_socket = None
        if rss_mb is not None and self.idle_mb is not None:
            # Every socket the server holds: heads, watchers, the silent customers, the agents.
            sockets = max(self.waiting, len(self.heads) + SOCKETS) + len(self.agents)
            per_socket = round((rss_mb - self.idle_mb) * 1024 / sockets)
        return {
            "p50_ms": round(pct(self.total_ms, 0.50), 2),
            "p95_ms": round(pct(self.total_ms, 0.95), 2),
            "max_ms": round(max(self.total_ms), 2),
            "first_socket_p50_ms": round(pct(self.first_ms, 0.50), 2),
            "delivered_p50_ms": round(pct(self.delivered_ms, 0.50), 2) if self.delivered_ms else None,
            "delivered_p95_ms": round(pct(self.delivered_ms, 0.95), 2) if self.delivered_ms else None,
            "server_rss_mb": rss_mb,
            "server_kb_per_socket": per_socket,
        }

    async def close(self) -> None:
        # The server goes first: 1,000 customers dropping one by one would each move the
        # others' places, which is work (and log noise) nobody is measuring.
        if self.process.is_alive():
            self.process.kill()
        self.process.join(10)
        if self.watchers is not None:
            await asyncio.to_thread(self.watchers.stop)
        await asyncio.gather(*(s.close() for s in self.heads), return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in self.agents), return_exceptions=True)
        self.state_dir.cleanup()


async def bench_fanout(events: int, waiting: int = 10_000, agents: int = 500) -> dict[str, Any]:
    """The server as ``telepresence serve`` runs it, and the same with permessage-deflate off
    (uvicorn ``ws_per_message_deflate=False``), their events interleaved so load hits both alike.
    Each holds ``waiting`` customers (at least the heads and the 1,000 watchers) and ``agents``."""
    heads = events + WARM_UP
    _raise_fd_limit(2 * (SOCKETS + heads + agents) + 256)
    servers = {
        "fanout": _Server(per_message_deflate=True, waiting=waiting, agents=agents),
        "fanout_no_deflate": _Server(per_message_deflate=False, waiting=waiting, agents=agents),
    }
    try:
        for name, server in servers.items():
            await server.start()
            await server.connect(heads, name)
        for index in progress(range(heads), desc="fan-out", total=heads):
            for server in servers.values():
                await server.head_leaves(index, record=index >= WARM_UP)
                await asyncio.sleep(0.05)
        summary: dict[str, Any] = {
            "sockets": SOCKETS,
            "fanout_events": events,
            "fanout_waiting": max(waiting, heads + SOCKETS),
            "fanout_agents": agents,
            "fanout_samples_expected": 2 * events,
            "fanout_samples_measured": sum(len(server.total_ms) for server in servers.values()),
        }
        for name, server in servers.items():
            summary.update({f"{name}_{key}": value for key, value in server.summary().items()})
        return summary
    finally:
        for server in servers.values():
            await server.close()
