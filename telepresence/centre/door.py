"""A door: this process's sockets, relayed to the leader, and the leader's answers delivered.

:func:`~telepresence.signalling.serve_socket` talks to a door exactly as it talks to a
single-process :class:`~telepresence.switchboard.Switchboard` (``handle``, ``disconnected``).
The door appends each message to the centre's inbox stream, reads its own outbox stream for
what the leader (or another door's rooms) sends its sockets, and keeps a heartbeat in Redis
so the leader can tell when a door is gone. While Redis is unreachable a message gets a
clear error (``unavailable``) and nothing else happens; a close is reported once Redis is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from telepresence import protocol as p
from telepresence.centre import keys
from telepresence.centre.media_host import MediaHost
from telepresence.centre.remote import SocketAddress, deliveries, line_texts
from telepresence.config import Settings
from telepresence.metrics import Metrics
from telepresence.protocol import ProtocolError
from telepresence.sessions import Connection
from telepresence.signalling import SocketConnection

logger = logging.getLogger(__name__)

Message = dict[str, Any]
HEARTBEAT_S = 1.0
HEARTBEAT_TTL_MS = 3000  # a door silent this long is gone: its sockets are closed for the leader
UNAVAILABLE = ProtocolError(
    "unavailable", "the contact centre cannot be reached just now; please try again in a moment"
)


class NameTaken(Exception):
    """Another live process of the centre already answers to this node's name."""


class Door:
    """This process's sockets and rooms on a centre of many processes."""

    def __init__(
        self, redis: Redis, settings: Settings, metrics: Metrics, *, node: str, incarnation: str
    ) -> None:
        self.node = node
        self.incarnation = incarnation
        self.me = f"{node}#{incarnation}"
        self._redis = redis
        # Local socket id -> socket, from its first message (serve_socket's SocketConnection:
        # a moved line's statuses are sent as text, send_text).
        self.sockets: dict[str, SocketConnection] = {}
        self._unreported: list[str] = []  # closes not yet told to the leader (Redis was away)
        self._tasks: list[asyncio.Task[None]] = []
        self.media_host = MediaHost(
            settings, metrics, me=self.me, deliver=self.deliver, to_leader=self.to_leader
        )

    async def start(self) -> None:
        await self._claim_name()  # the first heartbeat
        await self.media_host.start()
        last = await self._redis.xrevrange(keys.outbox(self.node), count=1)
        start_after = last[0][0] if last else b"0-0"
        self._tasks = [
            asyncio.create_task(self._heartbeat(), name="door-heartbeat"),
            asyncio.create_task(self._read_outbox(start_after), name="door-outbox"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.media_host.stop()
        try:  # the leader need not wait for the heartbeat's time to live
            if await self._redis.get(keys.alive(self.node)) == self.incarnation.encode():
                await self._redis.delete(keys.alive(self.node))
        except RedisError:
            pass

    # ------------------------------------------------------ the socket's side

    async def handle(self, conn: Connection, message: p.ClientMessage) -> None:
        if isinstance(message, p.Ping):
            conn.send({"type": "pong"})  # liveness of this door, answered here
            return
        self.sockets[conn.id] = conn  # type: ignore[assignment]  # before the leader can answer
        await self.to_leader(
            {"kind": "message", "conn": self.conn_id(conn), "body": message.model_dump_json()}
        )

    async def disconnected(self, conn: Connection) -> None:
        if self.sockets.pop(conn.id, None) is None:
            return  # it never said anything
        try:
            await self.to_leader({"kind": "closed", "conn": self.conn_id(conn)})
        except ProtocolError:
            self._unreported.append(self.conn_id(conn))

    def conn_id(self, conn: Connection) -> str:
        return SocketAddress(self.node, self.incarnation, conn.id).conn_id

    # ------------------------------------------------------------ relaying

    async def to_leader(self, entry: Message) -> None:
        """Append to the centre's inbox; raises ``unavailable`` for the client when Redis is away."""
        try:
            await self._append_inbox(entry)
        except RedisError:
            logger.warning("the inbox is unreachable: a %s entry was refused", entry["kind"])
            raise UNAVAILABLE from None

    async def _append_inbox(self, entry: Message) -> None:
        await self._redis.xadd(
            keys.INBOX, {"e": json.dumps(entry)}, maxlen=keys.INBOX_MAXLEN, approximate=True
        )

    async def deliver(self, conn_id: str, message: Message) -> None:
        """Send to a socket on whichever door holds it (for this door's rooms)."""
        address = SocketAddress.parse(conn_id)
        entry = {"conn": address.local_id, "incarnation": address.incarnation, "send": message}
        if address.node == self.node:
            self._dispatch(entry)
            return
        try:
            await self._redis.xadd(
                keys.outbox(address.node),
                {"e": json.dumps([entry])},
                maxlen=keys.OUTBOX_MAXLEN,
                approximate=True,
            )
        except RedisError:
            logger.warning(
                "could not reach %s's door: a %s message was dropped", address.node, message.get("type")
            )

    async def _read_outbox(self, after: bytes | str) -> None:
        stream = keys.outbox(self.node)
        while True:
            try:
                found = await self._redis.xread({stream: after}, count=100, block=1000)
            except RedisError:
                await asyncio.sleep(0.5)  # Redis away: the heartbeat's log says so
                continue
            for _, entries in found:
                for entry_id, fields in entries:
                    after = entry_id
                    for entry in json.loads(fields[b"e"]):
                        try:
                            self._dispatch(entry)
                        except Exception:
                            logger.exception("door: could not deliver an outbox entry")

    def _dispatch(self, entry: Message) -> None:
        if "media" in entry:
            self.media_host.take(entry)
            return
        if entry["incarnation"] != self.incarnation:
            return  # for the sockets of an earlier life of this door
        if "close" in entry:
            conn = self.sockets.get(entry["conn"])
            if conn is not None:
                code, reason = entry["close"]
                conn.close(code, reason)
            return
        sockets = self.sockets
        if "line" in entry:  # a queue's moved line: each status made as text, sent as it is
            for local_id, text in line_texts(entry):
                conn = sockets.get(local_id)
                if conn is not None:  # None: closed since
                    conn.send_text(text)
            return
        for local_id, message in deliveries(entry):  # one message, or a run of status rows
            conn = sockets.get(local_id)
            if conn is not None:  # None: closed since
                conn.send(message)

    # ----------------------------------------------------------- liveness

    async def _heartbeat(self) -> None:
        reachable = True
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self._beat()
                while self._unreported:
                    await self._append_inbox({"kind": "closed", "conn": self._unreported[0]})
                    self._unreported.pop(0)
                if not reachable:
                    logger.info("Redis is reachable again")
                reachable = True
            except RedisError as exc:
                if reachable:
                    logger.error("Redis is unreachable: %s", exc)
                reachable = False

    async def _claim_name(self) -> None:
        """Wait out the heartbeat of an earlier life of this address (a kill -9); refuse to
        start while another live process of the centre answers to the same name."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HEARTBEAT_TTL_MS / 1000 + HEARTBEAT_S
        # SET NX: of two processes starting under one name, only one gets it.
        while not await self._redis.set(
            keys.alive(self.node), self.incarnation, nx=True, px=HEARTBEAT_TTL_MS
        ):
            if loop.time() > deadline:
                raise NameTaken(
                    f"another process of this centre runs as {self.node} (its heartbeat goes on): "
                    "give each process its own --host/--port"
                )
            await asyncio.sleep(0.2)

    async def _beat(self) -> None:
        await self._redis.set(keys.alive(self.node), self.incarnation, px=HEARTBEAT_TTL_MS)
