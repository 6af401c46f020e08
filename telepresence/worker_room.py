"""A room in a media worker process, behind the :class:`~telepresence.room_handle.RoomHandle` interface.

Every method is a small message to the worker (:mod:`telepresence.worker_wire`); those
that need an answer (an offer's answer, a screen share's new layout, closing) wait for
it with a timeout, so nothing waits forever on a worker that died or hangs. The room's
receipt and CPU share arrive with the worker's periodic stats and are kept here, so
reading them never waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from media.answer import MediaError
from media.room import Role
from telepresence.room_handle import PeerStateFn

logger = logging.getLogger(__name__)


class WorkerGone(Exception):
    """The worker process that held a room has exited."""


class Channel(Protocol):
    """The worker's side of the pool that a room talks through (worker_pool.WorkerProcess)."""

    name: str
    alive: bool
    rooms: set[str]

    def send(self, message: dict[str, Any]) -> None: ...

    async def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]: ...


class WorkerRoom:
    """A proxy of one room in a worker process."""

    def __init__(
        self,
        process: Channel,
        room_id: str,
        label: str,
        *,
        answer_timeout_s: float,
        close_timeout_s: float,
        forget: Callable[[WorkerRoom], None],
    ) -> None:
        self.process = process
        self.room_id = room_id
        self.label = label
        self.worker = process.name
        self.on_peer_state: PeerStateFn | None = None
        self.on_preview: Callable[[bool], None] | None = None
        self.on_lost: Callable[[], None] | None = None
        self.missing: dict[Role, list[str]] = {}
        self.cpu_pct: float | None = None
        # The screen limits (max_fps, scale) the worker's room enforced at its last stats; None: not yet.
        self.screen_limits: tuple[float | None, float] | None = None
        self._layout = "agent"
        self._stages: dict[str, dict[str, float]] = {}
        self._answer_timeout_s = answer_timeout_s
        self._close_timeout_s = close_timeout_s
        self._forget = forget
        self._lost = False
        self._closed: asyncio.Future[None] | None = None
        self.greeting = False

    @property
    def layout(self) -> str:
        return self._layout

    async def answer(self, role: Role, sdp: str) -> str:
        reply = await self._request({"op": "answer", "role": role, "sdp": sdp}, self._answer_timeout_s)
        self.missing[role] = reply.get("missing", [])
        return str(reply["sdp"])

    async def answer_camera(self, sdp: str) -> str:
        reply = await self._request({"op": "camera", "sdp": sdp}, self._answer_timeout_s)
        return str(reply["sdp"])

    async def release_camera(self) -> None:
        await self._request({"op": "release_camera"}, self._answer_timeout_s)

    async def answer_monitor(self, sdp: str) -> str:
        reply = await self._request({"op": "monitor", "sdp": sdp}, self._answer_timeout_s)
        return str(reply["sdp"])

    async def release_monitor(self, answer: str | None = None) -> None:
        await self._request({"op": "release_monitor", "answer": answer}, self._answer_timeout_s)

    def set_layout(self, name: str) -> None:
        self._layout = name
        self._send({"op": "set_layout", "layout": name})

    def set_screen_limits(self, max_fps: float | None, scale: float) -> None:
        self._send({"op": "screen_limits", "max_fps": max_fps, "scale": scale})

    async def screen_shared(self, active: bool) -> None:
        await self._request({"op": "screen_shared", "active": active}, self._answer_timeout_s)

    def set_agent_name(self, name: str) -> None:
        self._send({"op": "agent_name", "name": name})

    def record_stat(self, name: str, value: float) -> None:
        self._send({"op": "stat", "name": name, "value": value})

    def receipt_summary(self) -> dict[str, dict[str, float]]:
        return self._stages

    async def greet(self, look: str) -> None:
        await self._request({"op": "greet", "look": look}, self._answer_timeout_s)
        self.greeting = True

    def say(self, text: str) -> None:
        if self.greeting:
            self._send({"op": "say", "text": text})

    def update(self, stats: dict[str, Any]) -> None:
        """The worker's periodic figures for this room: its CPU share, receipt so far and screen limits."""
        if stats.get("cpu_pct") is not None:
            self.cpu_pct = float(stats["cpu_pct"])
        self._stages = stats.get("stages") or {}
        if stats.get("screen_limits") is not None:
            max_fps, scale = stats["screen_limits"]
            self.screen_limits = (max_fps, float(scale))

    def lost(self) -> None:
        """The worker died with this room in it: tell the owner once."""
        if self._lost or self._closed is not None:
            return
        self._lost = True
        if self.on_lost is not None:
            self.on_lost()

    async def close(self) -> None:
        """Close the room in its worker (bounded). A second call awaits the first."""
        if self._closed is not None:
            await asyncio.shield(self._closed)
            return
        self._closed = asyncio.get_running_loop().create_future()
        try:
            if self.process.alive:
                await self.process.request({"op": "close", "room": self.room_id}, self._close_timeout_s)
        except (WorkerGone, TimeoutError):
            logger.warning("%s: %s did not confirm closing the room", self.label, self.worker)
        finally:
            self._forget(self)
            self._closed.set_result(None)

    # ------------------------------------------------------------------ wire

    def _send(self, message: dict[str, Any]) -> None:
        if self._closed is None and not self._lost:
            self.process.send({**message, "room": self.room_id})

    async def _request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """One request about this room; its errors as MediaError, as an in-process room raises them."""
        if self._closed is not None or self._lost:
            raise MediaError("call_ended", "this call's media is closed")
        try:
            reply = await self.process.request({**message, "room": self.room_id}, timeout)
        except WorkerGone:
            raise MediaError("media_unavailable", "the call's media process stopped") from None
        except TimeoutError:
            raise MediaError("media_unavailable", "the call's media process did not answer in time") from None
        if "error" in reply:
            code, text = reply["error"]
            raise MediaError(str(code), str(text))
        if "layout" in reply:
            self._layout = str(reply["layout"])
        return reply
