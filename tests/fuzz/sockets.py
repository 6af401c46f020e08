"""The fuzzer's view of a WebSocket: a reader task that keeps every message and the close.

Not :class:`tests.conftest.Client`: that one reads on demand, consumes what it matched and
raises on a timeout; the fuzzer needs every reply kept in order (a frame's replies are
what came after it), the close code as soon as the server closes, and bad server frames
and error codes reported to the fuzzer rather than raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import typing
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed

if typing.TYPE_CHECKING:
    from tests.fuzz.runner import Fuzzer


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
