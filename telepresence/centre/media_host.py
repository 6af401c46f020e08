"""A door's rooms: the media of the calls the leader placed on this process.

The leader forwards each media message of such a call (:mod:`telepresence.centre.media_router`)
with where both sides' sockets are now; this host keeps a local
:class:`~telepresence.calls.Call` per call for a real
:class:`~telepresence.media_control.MediaControl` (rooms, media workers, receipts), sends
what the rooms say to whichever door holds each socket, and tells the leader when a
room's media fails or its worker dies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from media.room import Role
from telepresence.calls import Call
from telepresence.config import Settings
from telepresence.media_control import MediaControl
from telepresence.metrics import Metrics
from telepresence.protocol import ProtocolError, parse_client_message

logger = logging.getLogger(__name__)

Message = dict[str, Any]
Deliver = Callable[[str, Message], Awaitable[None]]  # (conn id, message): to whichever door holds it
ToLeader = Callable[[Message], Awaitable[None]]
ENDED_KEPT = 10_000  # ids of calls closed here, remembered so a late message cannot bring a room back


class MediaHost:
    """The calls whose rooms live on this door, and the one task that pushes their receipts."""

    def __init__(
        self, settings: Settings, metrics: Metrics, *, me: str, deliver: Deliver, to_leader: ToLeader
    ) -> None:
        self.me = me  # "node#incarnation", as the leader names this door
        self._settings = settings
        self._deliver = deliver
        self._to_leader = to_leader
        self.calls: dict[str, Call] = {}
        self._parties: dict[str, dict[Role, str | None]] = {}  # call id -> role -> conn id
        self._turns: dict[str, asyncio.Lock] = {}  # one call's messages are handled in order
        # Calls closed here, oldest first. A message the leader forwarded before the call ended
        # may still wait for its turn (behind an offer being answered) or not have started at
        # all when the close comes: it must not make the call, and a room, anew.
        self._ended: dict[str, None] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.media = MediaControl(
            settings, metrics, send=self._send, end_call=self._end_call, requeue_call=self._requeue_call
        )
        self._receipts: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.media.start()
        self._receipts = asyncio.create_task(self._push_receipts(), name="media-host-receipts")

    async def stop(self) -> None:
        if self._receipts is not None:
            self._receipts.cancel()
            await asyncio.gather(self._receipts, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for call in list(self.calls.values()):
            call.end("shutdown")
            self.media.close(call)
        self.calls.clear()
        await self.media.stop()

    # ----------------------------------------------------------------- input

    def take(self, entry: Message) -> None:
        """One entry of this door's outbox addressed to its rooms."""
        if entry.get("host") != self.me and entry["media"] == "close":
            return  # meant for an earlier life of this door
        if entry["media"] == "close":
            self._close(entry["call"])
            return
        described = entry["call"]
        if described["host"] != self.me:
            # Placed on an earlier life of this door: that room is gone with it. The leader
            # re-queues the call when it sees the old life's heartbeat end.
            self._spawn(self._refuse(described, entry["role"]), described["id"])
            return
        self._spawn(self._handle(described, entry["role"], entry["body"]), described["id"])

    async def _handle(self, described: Message, role: Role, body: str) -> None:
        call_id = described["id"]
        if call_id in self._ended:
            return
        async with self._turns.setdefault(call_id, asyncio.Lock()):
            if call_id in self._ended:
                logger.debug("%s: a %s media message came after the call ended", call_id, role)
                return
            call = self.calls.get(call_id)
            if call is None:
                call = self.calls[call_id] = Call(
                    call_id, described["customer_id"], described["agent_id"], started_at=time.monotonic()
                )
            self._parties[call_id] = {
                "customer": described["customer_conn"],
                "agent": described["agent_conn"],
            }
            had_room = call.room is not None
            try:
                await self.media.handle(call, role, parse_client_message(body))
            except ProtocolError as exc:
                self._send(call, role, exc.to_message())
            except Exception:
                logger.exception("%s: media message from the %s failed", call_id, role)
                self._send(call, role, {"type": "error", "code": "internal", "message": "media failed"})
            if call.room is not None and not had_room:
                self.media.refresh_gauges()  # a new room counts on this process's /metrics at once

    async def _refuse(self, described: Message, role: Role) -> None:
        conn = described[f"{role}_conn"]
        if conn:
            await self._deliver(
                conn, {"type": "error", "code": "media_unavailable", "message": "this call's media is gone"}
            )

    def _close(self, call_id: str) -> None:
        self._ended[call_id] = None
        if len(self._ended) > ENDED_KEPT:
            del self._ended[next(iter(self._ended))]
        call = self.calls.pop(call_id, None)
        self._parties.pop(call_id, None)
        self._turns.pop(call_id, None)
        if call is not None:
            call.end("ended")
            self.media.close(call)
            self.media.refresh_gauges()

    # ---------------------------------------------------------------- output

    def _send(self, call: Call, role: Role, message: Message) -> None:
        conn = self._parties.get(call.id, {}).get(role)
        if conn:
            self._spawn(self._deliver(conn, message), call.id)

    async def _end_call(self, call: Call, reason: str) -> None:
        await self._to_leader({"kind": "media_ended", "call": call.id, "reason": reason})

    async def _requeue_call(self, call: Call) -> None:
        await self._to_leader({"kind": "media_lost", "call": call.id})

    async def _push_receipts(self) -> None:
        while True:
            await asyncio.sleep(self._settings.receipt_interval_s)
            self.media.push_receipts(list(self.calls.values()), time.monotonic())
            # /metrics reads the gauges as last published: a door has no switchboard to refresh
            # them on each read, so its rooms and their CPU are published here, and on each change.
            self.media.refresh_gauges()

    def _spawn(self, work: Awaitable[None], label: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(f"{label} media")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("media host: %s failed", task.get_name(), exc_info=task.exception())
