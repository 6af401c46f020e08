"""Shared fixtures: a real uvicorn server on loopback and WebSocket clients that speak the protocol."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import websockets

from telepresence.app import create_app
from telepresence.auth import Claims, TokenAuthority
from telepresence.config import Settings
from tests.redis_server import REDIS_SERVER, RedisServer

TEST_SECRET = "test-secret-0123456789abcdef"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run long soak tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="long run: pass --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """This test's own running ``redis-server`` (``.url``, ``.port``, ``stop/kill/start()``)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    server = RedisServer(free_port(), tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@dataclass
class LiveServer:
    url: str
    ws_url: str
    settings: Settings
    app: Any
    authority: TokenAuthority

    def token(
        self,
        name: str,
        *,
        skills: tuple[str, ...] = (),
        languages: tuple[str, ...] = (),
        role: str = "agent",
        ttl: float = 3600,
    ) -> str:
        return self.authority.mint(
            Claims(name=name, role=role, skills=skills, languages=languages, expires_at=time.time() + ttl)  # type: ignore[arg-type]
        )

    @property
    def switchboard(self) -> Any:
        return self.app.state.switchboard


@contextlib.asynccontextmanager
async def run_server(tmp_path: Path, **overrides: Any) -> AsyncIterator[LiveServer]:
    """A real uvicorn server on a free loopback port, in this event loop.

    Calls' media runs in this process (``media_workers=0``) unless a test asks for workers:
    tests read rooms' internals (``switchboard.calls[id].room.compositor``).
    """
    overrides.setdefault("media_workers", 0)
    port = free_port()
    # The suite's machine is shared and often busy: admission (which would make customers wait
    # for CPU) is off unless a test turns it on (tests/control/test_admission.py).
    overrides.setdefault("cpu_budget_pct", 100.0)
    settings = Settings.load(env={}, state_dir=tmp_path, secret=TEST_SECRET, port=port, **overrides)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        ws_max_size=settings.max_message_bytes + 1024,
        # Per-message deflate costs ~47 KB of server memory a socket for small JSON messages.
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield LiveServer(
            f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws", settings, app, app.state.authority
        )
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with run_server(
        tmp_path, offer_timeout_s=30, wrap_up_s=0, rejoin_grace_s=5, agent_grace_s=0.3
    ) as live:
        yield live


class Client:
    """A protocol client over a real WebSocket: send messages, wait for the ones you expect."""

    def __init__(self, ws: websockets.ClientConnection, label: str) -> None:
        self.ws = ws
        self.label = label
        self.received: list[dict[str, Any]] = []
        self._consumed: set[int] = set()

    async def send(self, type: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": type, **fields}))

    async def expect(self, type: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """The oldest message of ``type`` (matching ``match``) not yet consumed, waiting for it."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for index, message in enumerate(self.received):
                if index in self._consumed or message["type"] != type:
                    continue
                if all(message.get(k) == v for k, v in match.items()):
                    self._consumed.add(index)
                    return message
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                seen = [str(m)[:160] for m in self.received[-12:]]
                raise AssertionError(f"{self.label}: no {type} {match or ''} in the last messages {seen}")
            try:
                raw = await asyncio.wait_for(self.ws.recv(), remaining)
            except TimeoutError:
                continue
            self.received.append(json.loads(raw))

    async def latest(self, type: str, settle: float = 0.2) -> dict[str, Any] | None:
        """Drain for ``settle`` seconds, then the last unconsumed message of ``type``, if any."""
        with contextlib.suppress(TimeoutError):
            while True:
                self.received.append(json.loads(await asyncio.wait_for(self.ws.recv(), settle)))
        found = [m for i, m in enumerate(self.received) if m["type"] == type and i not in self._consumed]
        return found[-1] if found else None

    async def close(self) -> None:
        await self.ws.close()


@pytest.fixture
async def connect(server: LiveServer) -> AsyncIterator[Any]:
    clients: list[Client] = []

    async def open_client(label: str = "client") -> Client:
        ws = await websockets.connect(server.ws_url, max_size=None)
        client = Client(ws, label)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()


async def join(connect: Any, name: str, **fields: Any) -> Client:
    customer = await connect(name)
    await customer.send("join", name=name, **fields)
    await customer.expect("welcome")
    return customer


async def login(
    connect: Any, server: LiveServer, name: str, *, available: bool = True, **token_fields: Any
) -> Client:
    agent = await connect(name)
    await agent.send("login", token=server.token(name, **token_fields))
    await agent.expect("logged_in")
    if available:
        await agent.send("set_status", status="available")
        await agent.expect("agent_status")
    return agent
