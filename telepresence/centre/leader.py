"""The leader: the centre's one switchboard, applying the inbox in order, committing atomically.

A term starts from the last committed snapshot and the inbox entries after it. Each step
reads what the doors appended, applies it (and whatever fell due: offers expiring, grace
periods ending) to a real :class:`~telepresence.switchboard.Switchboard` whose sockets are
:class:`~telepresence.centre.remote.RemoteConnection` s, then commits in ONE Lua script:
the lease still ours, the new snapshot, the last entry applied, /api/status, and every
message caused, on the outbox stream of the door that holds each socket. A leader that
dies before a commit leaves no trace; its successor applies the same entries again, so
no decision is lost or taken twice. The store's writes (tickets, chat, history) are not in
the commit: an entry applied twice may append its chat line twice (docs/scale-out.md).

The leader also watches the doors' heartbeats: the sockets of a door that is gone are
closed as a socket close is (customers keep their place for ``rejoin_grace_s``), and the
calls whose room was there end with their customers back at the head of the queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from telepresence import protocol as p
from telepresence.centre import keys, snapshot
from telepresence.centre.lease import RENEW_S, Lease
from telepresence.centre.media_router import MediaRouter
from telepresence.centre.remote import Effects, RemoteConnection, SocketAddress
from telepresence.host_control import is_host_message
from telepresence.metrics import Metrics
from telepresence.protocol import ProtocolError, parse_client_message
from telepresence.sessions import AgentSession
from telepresence.switchboard import Switchboard

logger = logging.getLogger(__name__)

BATCH = 256  # inbox entries applied per commit at most
DOOR_CHECK_S = 1.0
DOOR_GONE_S = 2.0  # a heartbeat missing this long (after its own time to live) is a dead door
OUTBOX_MAXLEN = 10_000

_COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[3])
redis.call('SET', KEYS[4], ARGV[4])
if ARGV[3] ~= '0-0' then redis.call('XTRIM', KEYS[5], 'MINID', ARGV[3]) end
for k = 6, #KEYS do
    redis.call('XADD', KEYS[k], 'MAXLEN', '~', ARGV[5], '*', 'e', ARGV[k])
end
return 1
"""


class LeaseLost(Exception):
    """Another process leads now (or Redis could not confirm that this one still does)."""


class Leader:
    """One term of leadership: from taking the lease to losing it."""

    def __init__(
        self,
        redis: Redis,
        lease: Lease,
        metrics: Metrics,
        make: Callable[[Effects], tuple[Switchboard, MediaRouter]],
    ) -> None:
        self._redis = redis
        self._lease = lease
        self._metrics = metrics
        self._effects = Effects()
        self.switchboard, self._router = make(self._effects)
        self._commit = redis.register_script(_COMMIT)
        self._conns: dict[str, RemoteConnection] = {}
        self._applied = "0-0"
        self._missing_since: dict[
            str, float
        ] = {}  # "node#incarnation" -> when its heartbeat was first missed
        self._next_door_check = 0.0

    async def run(self) -> None:
        """Lead until the lease is lost (raises :class:`LeaseLost`) or the task is cancelled."""
        await self._load()
        renewing = asyncio.create_task(self._renew(), name="leader-lease")
        stepping = asyncio.create_task(self._steps(), name="leader-steps")
        try:
            done, _ = await asyncio.wait({renewing, stepping}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # LeaseLost, or a bug: either ends this term
        finally:
            for task in (renewing, stepping):
                task.cancel()
            await asyncio.gather(renewing, stepping, return_exceptions=True)

    async def _load(self) -> None:
        data, applied = await self._redis.mget(keys.SNAPSHOT, keys.APPLIED)
        if data is not None:
            self._conns = snapshot.restore(data, self.switchboard, self._router, self._effects)
        self._applied = applied.decode() if applied else "0-0"
        logger.info(
            "leading the centre from inbox entry %s: %d waiting or talking, %d staff",
            self._applied,
            len(self.switchboard.directory.customers),
            len(self.switchboard.directory.agents) + len(self.switchboard.directory.operators),
        )

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_S)
            if not await self._lease.renew():
                raise LeaseLost("the lease was taken over")

    async def _steps(self) -> None:
        while True:
            switchboard = self.switchboard
            deadline = switchboard.next_deadline()
            wait_ms = 1000 if deadline is None else int(min(1.0, max(0.0, deadline - time.time())) * 1000)
            found = await self._redis.xread({keys.INBOX: self._applied}, count=BATCH, block=max(1, wait_ms))
            entries = found[0][1] if found else []
            for entry_id, fields in entries:
                await self._apply(json.loads(fields[b"e"]))
                self._applied = entry_id.decode()
            now = time.time()
            due = deadline is not None and deadline <= now
            if due:
                await switchboard.run_due()
            if now >= self._next_door_check:
                self._next_door_check = now + DOOR_CHECK_S
                due = await self._check_doors(now) or due
            if entries or due or self._effects.by_node:
                await self.commit()

    # ------------------------------------------------------------- applying

    async def _apply(self, entry: dict[str, Any]) -> None:
        kind = entry.get("kind")
        switchboard = self.switchboard
        if kind == "message":
            conn = self._conn(entry["conn"])
            try:
                message = parse_client_message(entry["body"])
                self._refuse_host_messages(conn, message)
                await switchboard.handle(conn, message)
            except ProtocolError as exc:
                self._metrics.protocol_errors.labels(exc.code).inc()
                conn.send(exc.to_message())
            except Exception:
                # A bug costs this one message, never the centre.
                logger.exception("%s: error handling a message", conn.id)
                conn.send(
                    {
                        "type": "error",
                        "code": "internal",
                        "message": "the server could not handle that message",
                    }
                )
        elif kind == "closed":
            conn = self._conns.pop(entry["conn"], None)
            if conn is not None:
                await switchboard.disconnected(conn)
        elif kind in ("media_ended", "media_lost"):
            call = switchboard.directory.calls.get(entry["call"])
            if call is not None and kind == "media_ended":
                await switchboard.end_call_for_media(call, entry["reason"])
            elif call is not None:
                await switchboard.requeue_for_media(call)
        else:
            logger.warning("leader: an inbox entry of unknown kind %r was skipped", kind)

    def _conn(self, conn_id: str) -> RemoteConnection:
        conn = self._conns.get(conn_id)
        if conn is None:
            conn = self._conns[conn_id] = RemoteConnection(SocketAddress.parse(conn_id), self._effects)
        return conn

    def _refuse_host_messages(self, conn: RemoteConnection, message: p.ClientMessage) -> None:
        session = self.switchboard.directory.by_conn.get(conn.id)
        is_operator = isinstance(session, AgentSession) and session.claims.role == "operator"
        if is_operator and (is_host_message(message) or isinstance(message, p.WebRtcOffer)):
            raise ProtocolError(
                "unsupported", "the avatar host runs on a single-process centre (no --redis) in this version"
            )

    # ---------------------------------------------------------------- doors

    async def _check_doors(self, now: float) -> bool:
        """Close the sockets, and re-queue the calls, of doors whose heartbeat stopped. True if any."""
        lives = {conn.address.node: set() for conn in self._conns.values()}
        for conn in self._conns.values():
            lives[conn.address.node].add(conn.address.incarnation)
        for host in self._router.rooms.values():
            node, _, incarnation = host.partition("#")
            lives.setdefault(node, set()).add(incarnation)
        if not lives:
            return False
        nodes = sorted(lives)
        beating = await self._redis.mget([keys.alive(node) for node in nodes])
        gone: set[str] = set()
        for node, current in zip(nodes, beating, strict=True):
            current = current.decode() if current else None
            for incarnation in lives[node]:
                life = f"{node}#{incarnation}"
                if incarnation == current:
                    self._missing_since.pop(life, None)
                elif now - self._missing_since.setdefault(life, now) >= DOOR_GONE_S:
                    gone.add(life)
        if not gone:
            return False
        await self._doors_gone(gone)
        return True

    async def _doors_gone(self, gone: set[str]) -> None:
        switchboard = self.switchboard
        for call_id in self._router.calls_hosted_by(gone):
            self._router.rooms.pop(call_id, None)
            call = switchboard.directory.calls.get(call_id)
            if call is not None:
                logger.warning(
                    "%s: its media's process is gone; the customer goes back to the queue", call_id
                )
                await switchboard.requeue_for_media(call)
        for conn in [c for c in self._conns.values() if f"{c.address.node}#{c.address.incarnation}" in gone]:
            del self._conns[conn.id]
            conn.close(
                1012, "the server restarted"
            )  # the door may be alive but cut off: its browser reconnects
            await switchboard.disconnected(conn)
        for life in gone:
            self._missing_since.pop(life, None)
        logger.warning("doors gone: %s", ", ".join(sorted(gone)))

    # ------------------------------------------------------------- committing

    async def commit(self) -> None:
        """State, status and effects, all or nothing, only while the lease is ours."""
        switchboard = self.switchboard
        state = snapshot.capture(switchboard, self._router)
        status = json.dumps(switchboard.status_report())
        outboxes = self._effects.take()
        nodes = sorted(outboxes)
        ok = await self._commit(
            keys=[
                keys.LEADER,
                keys.SNAPSHOT,
                keys.APPLIED,
                keys.STATUS,
                keys.INBOX,
                *map(keys.outbox, nodes),
            ],
            args=[
                self._lease.holder,
                state,
                self._applied,
                status,
                OUTBOX_MAXLEN,
                *[json.dumps(outboxes[n]) for n in nodes],
            ],
        )
        if not ok:
            raise LeaseLost("the lease was lost before a commit")
