"""The leader: the centre's one switchboard, applying the inbox in order, step by step.

A step reads what the doors appended to the inbox, applies it (and whatever fell due:
offers expiring, grace periods ending; and doors found gone) to a real
:class:`~telepresence.switchboard.Switchboard` whose sockets are
:class:`~telepresence.centre.remote.RemoteConnection` s, then commits in ONE Lua script:
the lease still ours, the step's record (:class:`~telepresence.centre.replay.StepRecord`)
and every message caused, on the outbox stream of the door that holds each socket (a
queue's moved line as its sockets and their places with the line's figures: the door makes
the messages, :meth:`~telepresence.centre.remote.Effects.add_line`). A leader that dies
before a commit leaves no trace: its successor applies the same entries again. Once
replaying the steps since would cost about a second, the leader also writes a snapshot of
the whole state (:mod:`~telepresence.centre.snapshot_writer`); a new term
restores the latest and replays the steps recorded since, silently (their messages were sent),
so no decision is lost or taken twice. The store's writes are outside the commit: an entry
applied again after a leader died mid-step may append its chat line or history twice (docs/scale-out.md).

The leader also watches the doors' heartbeats: the sockets of a door that is gone are
closed as a socket close is (customers keep their place for ``rejoin_grace_s``), and the
calls whose room was there end with their customers back at the head of the queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from telepresence import protocol as p
from telepresence.auth import TokenAuthority
from telepresence.centre import keys, snapshot
from telepresence.centre.ids import DerivedIds
from telepresence.centre.lease import RENEW_S, Lease, LeaseLost
from telepresence.centre.media_router import MediaRouter
from telepresence.centre.remote import Effects, RemoteConnection, SocketAddress
from telepresence.centre.replay import ReplayStore, StepRecord
from telepresence.centre.snapshot_writer import SnapshotWriter
from telepresence.config import Settings
from telepresence.host_control import is_host_message
from telepresence.metrics import CENTRE_FAMILIES, Metrics, select_families
from telepresence.protocol import ProtocolError
from telepresence.sessions import AgentSession, Connection
from telepresence.signalling import handle_frame
from telepresence.store import Store
from telepresence.switchboard import Switchboard

logger = logging.getLogger(__name__)

BATCH = 256  # inbox entries applied in one step at most
DOOR_CHECK_S = 1.0
DOOR_GONE_S = 2.0  # a heartbeat missing this long (after its own time to live) is a dead door
# /api/status is written at most this often: its queue figures cost ~25 ms at 10,000 waiting.
STATUS_EVERY_S = 0.5
METRICS_EVERY_S = 1.0

_COMMIT_STEP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local id = redis.call('XADD', KEYS[2], '*', 'r', ARGV[2])
for k = 3, #KEYS do
    redis.call('XADD', KEYS[k], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[k + 1])
end
return id
"""
_PUBLISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
"""
FIGURES_TTL_MS = 60_000  # /api/status and the centre's metrics vanish with no leader to refresh them


class Leader:
    """One term of leadership: from taking the lease to losing it."""

    def __init__(
        self,
        redis: Redis,
        lease: Lease,
        *,
        settings: Settings,
        store: Store,
        authority: TokenAuthority,
        metrics: Metrics,
        secret: bytes,
    ) -> None:
        self._redis = redis
        self._lease = lease
        self._metrics = metrics
        self._secret = secret
        self._effects = Effects()
        self._store = ReplayStore(store)
        self._router = MediaRouter(self._effects)
        # Wall-clock time, set once a step: deadlines in the state mean the same on every
        # machine, and a replayed step reads the time its first run read.
        self._now = time.time()
        # The centre's figures, apart from this process's own (its sockets, rooms, workers):
        # published for every process's /metrics once a second.
        self.centre_metrics = Metrics()
        self._metrics_at = 0.0
        self._status_at = 0.0
        self._status_stale = True
        self.switchboard = Switchboard(
            settings,
            self._store,  # type: ignore[arg-type]  # the Store protocol, writes muted in replays
            authority,
            self.centre_metrics,
            clock=lambda: self._now,
            wall_clock=lambda: self._now,
            media=self._router,  # type: ignore[arg-type]  # the same calls, sent to the hosting door
            ids=DerivedIds(secret),
        )
        self._router.bind(self.switchboard.directory)
        # A line's statuses travel as (socket, place) with the line's figures: each door makes
        # its own sockets' messages (the head of a long queue leaving moves thousands).
        self.switchboard.reports.line_sink = self._effects.add_line
        self._commit_step = redis.register_script(_COMMIT_STEP)
        self._publish = redis.register_script(_PUBLISH)  # figures only while the lease is ours
        self._conns: dict[str, RemoteConnection] = {}
        self._applied = "0-0"  # the last inbox entry applied
        self._step = "0-0"  # the last step committed (or replayed)
        self._snapshots = SnapshotWriter(
            redis, lease.holder, self._capture, every_steps=settings.snapshot_every_steps
        )
        self._missing_since: dict[
            str, float
        ] = {}  # "node#incarnation" -> when its heartbeat was first missed
        self._next_door_check = 0.0

    async def run(self) -> None:
        """Lead until the lease is lost (raises :class:`LeaseLost`) or the task is cancelled."""
        # Renewing from the start: loading a large snapshot and replaying may take longer than
        # the lease lives, and a lease lost there would make every successor fail the same way.
        renewing = asyncio.create_task(self._renew(), name="leader-lease")
        stepping = asyncio.create_task(self._resume_and_step(), name="leader-steps")
        try:
            done, _ = await asyncio.wait({renewing, stepping}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # LeaseLost, or a bug: either ends this term
        finally:
            for task in (renewing, stepping):
                task.cancel()
            await asyncio.gather(renewing, stepping, return_exceptions=True)

    async def _resume_and_step(self) -> None:
        await self._resume()
        await self._steps()

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_S)
            if not await self._lease.renew():
                raise LeaseLost("the lease was taken over")

    # ------------------------------------------------------------ resuming

    async def _resume(self) -> None:
        """The last snapshot, then every step committed since, replayed without a word."""
        data = await self._redis.get(keys.SNAPSHOT)
        if data is not None:
            restored = snapshot.restore(data, self.switchboard, self._router, self._effects)
            self._conns, self._applied, self._step = restored.conns, restored.applied, restored.step
        records = await self._redis.xrange(keys.STEPS, min=f"({self._step}" if self._step != "0-0" else "-")
        self._store.muted = True
        try:
            for step_id, fields in records:
                await self._replay(StepRecord.decode(json.loads(fields[b"r"])))
                self._step = step_id.decode()
        finally:
            self._store.muted = False
            self._effects.take()  # sent when those steps were committed
        logger.info(
            "leading the centre from step %s (%d replayed): %d waiting or talking, %d staff",
            self._step,
            len(records),
            len(self.switchboard.directory.customers),
            len(self.switchboard.directory.agents) + len(self.switchboard.directory.operators),
        )
        await self._snapshots.write_now(applied=self._applied, step=self._step)

    def _capture(self, applied: str, step: str) -> bytes:
        return snapshot.capture(self.switchboard, self._router, applied=applied, step=step)

    async def _replay(self, record: StepRecord) -> None:
        self._now = record.now
        if record.to != self._applied:
            entries = await self._redis.xrange(keys.INBOX, min=f"({self._applied}", max=record.to)
            for entry_id, fields in entries:
                await self._apply(json.loads(fields[b"e"]))
                self._applied = entry_id.decode()
                await asyncio.sleep(0)
        if record.due:
            await self.switchboard.run_due()
        if record.gone:
            await self._doors_gone(set(record.gone))

    # ------------------------------------------------------------ stepping

    async def _steps(self) -> None:
        while True:
            switchboard = self.switchboard
            deadline = switchboard.next_deadline()
            wait_s = 1.0 if deadline is None else min(1.0, max(0.0, deadline - time.time()))
            if self._status_stale:
                wait_s = min(wait_s, max(0.0, self._status_at + STATUS_EVERY_S - time.time()))
            found = await self._redis.xread(
                {keys.INBOX: self._applied}, count=BATCH, block=max(1, int(wait_s * 1000))
            )
            entries = found[0][1] if found else []
            self._now = now = time.time()
            for entry_id, fields in entries:
                cpu = time.thread_time()
                await self._apply(json.loads(fields[b"e"]))
                self._snapshots.replay_s += time.thread_time() - cpu
                self._applied = entry_id.decode()
                await asyncio.sleep(0)  # the lease's renewal must never wait for a whole batch
            cpu = time.thread_time()
            due = deadline is not None and deadline <= now
            if due:
                await switchboard.run_due()
            gone: set[str] = set()
            if now >= self._next_door_check:
                self._next_door_check = now + DOOR_CHECK_S
                gone = await self._gone_doors(now)
                if gone:
                    await self._doors_gone(gone)
            self._snapshots.replay_s += time.thread_time() - cpu  # what a replay of this step redoes
            if entries or due or gone or self._effects.by_node:
                await self._commit(StepRecord(self._applied, now, due, sorted(gone)))
            since = now - self._status_at
            if (self._status_stale and since >= STATUS_EVERY_S) or since >= FIGURES_TTL_MS / 2000:
                await self._publish_status(now)
            if now - self._metrics_at >= METRICS_EVERY_S:
                await self._publish_metrics(now)
            await self._snapshots.when_due(now, applied=self._applied, step=self._step)

    async def _apply(self, entry: dict[str, Any]) -> None:
        kind = entry.get("kind")
        switchboard = self.switchboard
        if kind == "message":
            # A Redis error is the store failing mid-message: this term ends, the next applies it again.
            conn = self._conn(entry["conn"])
            await handle_frame(self, conn, entry["body"], self._metrics, reraise=(RedisError,))
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

    async def handle(self, conn: Connection, message: p.ClientMessage) -> None:
        """The switchboard's, but the avatar host's messages are refused: it needs one process."""
        session = self.switchboard.directory.by_conn.get(conn.id)
        is_operator = isinstance(session, AgentSession) and session.claims.role == "operator"
        if is_operator and (is_host_message(message) or isinstance(message, p.WebRtcOffer)):
            raise ProtocolError(
                "unsupported", "the avatar host runs on a single-process centre (no --redis) in this version"
            )
        await self.switchboard.handle(conn, message)

    # ---------------------------------------------------------------- doors

    async def _gone_doors(self, now: float) -> set[str]:
        """The lives of doors ("node#incarnation") whose heartbeat has stopped for good."""
        lives: dict[str, set[str]] = {}
        for conn in self._conns.values():
            lives.setdefault(conn.address.node, set()).add(conn.address.incarnation)
        for host in self._router.rooms.values():
            node, _, incarnation = host.partition("#")
            lives.setdefault(node, set()).add(incarnation)
        if not lives:
            return set()
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
                    del self._missing_since[life]
        return gone

    async def _doors_gone(self, gone: set[str]) -> None:
        switchboard = self.switchboard
        # Sockets first: an agent on the gone door drops (away) before its calls' customers go
        # back to the queue, so they are not offered straight back to that agent.
        for conn in [c for c in self._conns.values() if f"{c.address.node}#{c.address.incarnation}" in gone]:
            del self._conns[conn.id]
            # The door may be alive but cut off: its browser reconnects.
            conn.close(1012, "the server restarted")
            await switchboard.disconnected(conn)
        for call_id in self._router.calls_hosted_by(gone):
            call = switchboard.directory.calls.get(call_id)
            if call is not None and call.active:
                logger.warning("%s: its media process is gone; its customer is re-queued", call_id)
                await switchboard.requeue_for_media(call)  # closes the room (a door cut off hears it)
            self._router.rooms.pop(call_id, None)
        logger.warning("doors gone: %s", ", ".join(sorted(gone)))

    # ------------------------------------------------------------- committing

    async def _commit(self, record: StepRecord) -> None:
        """The step's record and messages, all or nothing, only while the lease is ours."""
        outboxes = self._effects.take()
        nodes = sorted(outboxes)
        step = await self._commit_step(
            keys=[keys.LEADER, keys.STEPS, *map(keys.outbox, nodes)],
            args=[
                self._lease.holder,
                json.dumps(record.encode()),
                keys.OUTBOX_MAXLEN,
                *[json.dumps(outboxes[n]) for n in nodes],
            ],
        )
        if step is None:
            raise LeaseLost("the lease was lost before a commit")
        self._step = step.decode() if isinstance(step, bytes) else str(step)
        self._snapshots.steps += 1
        self._status_stale = True

    async def _publish_status(self, now: float) -> None:
        """/api/status for every process (figures only: not part of any commit)."""
        self._status_at = now
        self._status_stale = False
        status = json.dumps(self.switchboard.status_report())
        await self._publish(
            keys=[keys.LEADER, keys.STATUS], args=[self._lease.holder, status, FIGURES_TTL_MS]
        )

    async def _publish_metrics(self, now: float) -> None:
        """The centre's figures for every process's /metrics (not part of any commit: figures only)."""
        self._metrics_at = now
        self.switchboard.refresh_gauges()
        text = select_families(self.centre_metrics.render(), CENTRE_FAMILIES, keep=True)
        await self._publish(keys=[keys.LEADER, keys.METRICS], args=[self._lease.holder, text, FIGURES_TTL_MS])
