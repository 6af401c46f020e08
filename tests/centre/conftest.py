"""Fixtures for a centre of many processes: real ``telepresence serve --redis`` processes and clients."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets

from telepresence.auth import Claims, TokenAuthority
from tests.centre.processes import ServeProcess
from tests.conftest import TEST_SECRET, Client
from tests.redis_server import RedisServer

# Long enough for a customer to come back through another door after a kill -9 (the leader
# notices a dead door within ~5 s), short enough that nothing waits on it.
SETTINGS = {"offer_timeout_s": 30, "wrap_up_s": 0, "rejoin_grace_s": 30, "agent_grace_s": 2}


class Centre:
    """Processes of one centre on one Redis, and clients of any of them."""

    def __init__(self, redis: RedisServer, state_dir: Path) -> None:
        self.redis = redis
        self.state_dir = state_dir
        self.processes: list[ServeProcess] = []
        self.clients: list[Client] = []
        self._authority = TokenAuthority(TEST_SECRET.encode())

    async def start(self, count: int, **settings: Any) -> list[ServeProcess]:
        new = [ServeProcess(self.redis.url, self.state_dir, **{**SETTINGS, **settings}) for _ in range(count)]
        self.processes += new
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in new))
        return new

    async def restart(self, process: ServeProcess) -> ServeProcess:
        await asyncio.to_thread(process.start)
        return process

    def leader(self) -> ServeProcess:
        """The process that leads now, as the first live process's /api/status says."""
        name = self.alive()[0].status()["leader"]
        found = [p for p in self.processes if p.node == name]
        assert found, f"no process leads now (status says {name!r})"
        return found[0]

    def alive(self) -> list[ServeProcess]:
        return [p for p in self.processes if p.running]

    def others(self, process: ServeProcess) -> list[ServeProcess]:
        return [p for p in self.alive() if p is not process]

    async def connect(self, process: ServeProcess, label: str) -> Client:
        client = Client(await websockets.connect(process.ws_url, max_size=None), label)
        self.clients.append(client)
        return client

    async def join(self, process: ServeProcess, name: str, **fields: Any) -> Client:
        customer = await self.connect(process, name)
        await customer.send("join", name=name, **fields)
        await customer.expect("welcome")
        return customer

    async def login(
        self, process: ServeProcess, name: str, *, available: bool = True, **claims: Any
    ) -> Client:
        agent = await self.connect(process, name)
        await agent.send("login", token=self.token(name, **claims))
        await agent.expect("logged_in")
        if available:
            await agent.send("set_status", status="available")
            await agent.expect("agent_status")  # available, or busy at once with an offer
        return agent

    def token(self, name: str, *, skills: tuple[str, ...] = (), languages: tuple[str, ...] = ()) -> str:
        return self._authority.mint(
            Claims(name=name, role="agent", skills=skills, languages=languages, expires_at=time.time() + 3600)
        )

    async def close(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.close()
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in self.processes))


@pytest.fixture
async def centre(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Centre]:
    live = Centre(redis_server, tmp_path)
    try:
        yield live
    finally:
        await live.close()


async def eventually(check: Callable[[], Any], timeout_s: float = 10.0, every_s: float = 0.1) -> Any:
    """The first truthy result of ``check`` (sync, run in a thread), or fail with the last one."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = await asyncio.to_thread(check)
        except Exception as exc:  # a process restarting: try again
            result = exc
        if result and not isinstance(result, Exception):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: last {result!r}")
        await asyncio.sleep(every_s)
