"""Reception: how a socket becomes a customer (join, rejoin) or an agent (login).

A part of the :class:`~telepresence.switchboard.Switchboard`, kept apart because
identity has rules of its own: a signed customer key names a returning customer
(a forged one is a new customer, never someone else), a ticket brings a dropped
tab back to its place or call, a token admits staff, and the newest tab wins.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from telepresence import protocol as p
from telepresence.auth import AuthError, Ids, TokenAuthority
from telepresence.call_lifecycle import CallLifecycle
from telepresence.config import Settings
from telepresence.directory import Directory
from telepresence.host_control import HostControl
from telepresence.media_control import MediaControl
from telepresence.protocol import ProtocolError
from telepresence.reports import Reports
from telepresence.routing import Matchmaker, QueueKey
from telepresence.sessions import AgentSession, Connection, CustomerSession
from telepresence.store import Store
from telepresence.turn import IceConfig

logger = logging.getLogger(__name__)


@dataclass(kw_only=True, eq=False)  # a part of the switchboard, equal only to itself
class Reception:
    """Join, rejoin and login: the messages of a socket that is nobody yet."""

    settings: Settings
    authority: TokenAuthority
    store: Store
    matchmaker: Matchmaker
    directory: Directory
    lifecycle: CallLifecycle
    reports: Reports
    media: MediaControl
    host_control: HostControl
    clock: Callable[[], float]
    wall_clock: Callable[[], float]
    ids: Ids

    async def from_anonymous(self, conn: Connection, message: p.ClientMessage) -> None:
        if isinstance(message, p.Join):
            await self._join(conn, message)
        elif isinstance(message, p.Rejoin):
            await self._rejoin(conn, message.ticket)
        elif isinstance(message, p.Login):
            await self._login(conn, message)
        else:
            raise ProtocolError("not_joined", f"join the queue or log in before sending {message.type!r}")

    async def _join(self, conn: Connection, message: p.Join) -> None:
        customer_id = None
        if message.customer_key:
            try:
                customer_id = self.authority.customer_id_from_key(message.customer_key)
            except AuthError:
                customer_id = None  # a stale or foreign key: treat as a new customer
        if customer_id and customer_id in self.directory.customers:
            existing = self.directory.customers[customer_id]
            if existing.conn is None:
                await self._rejoin(conn, existing.ticket)  # a crashed tab joining again keeps its place
                return
            raise ProtocolError("already_queued", "you are already in the queue in another tab")
        key = self.matchmaker.queues.key(QueueKey(message.skill.lower(), message.language.lower()))
        self._check_queue(key)
        customer_id = customer_id or self.ids.new_id("cust")
        now = self.clock()
        session = CustomerSession(customer_id, self.ids.new_ticket(), message.name, message.topic, key, conn)
        history = await self.store.get_history(customer_id)
        last_agent = history[-1]["agent"] if history else None
        self.directory.customers[customer_id] = session
        self.directory.by_conn[conn.id] = session
        await self.lifecycle.save_ticket(session)
        conn.send(
            {
                "type": "welcome",
                "ticket": session.ticket,
                "customer_key": self.authority.customer_key(customer_id),
                "queue": str(key),
                "returning": bool(history),
                "greeter": self.media.greets,
                **self._ice_fields(),
            }
        )
        logger.info("customer %s joined %s", customer_id, key)
        await self.lifecycle.apply(self.matchmaker.enqueue(customer_id, key, now, last_agent=last_agent))

    def _check_queue(self, key: QueueKey) -> None:
        """Where the centre lists its skills (or languages), a customer may only name those."""
        queues = self.matchmaker.queues
        if self.settings.skills and not queues.is_standing(QueueKey(skill=key.skill)):
            raise ProtocolError("unknown_queue", f"this centre has no {key.skill!r} queue")
        if self.settings.languages and not queues.is_standing(QueueKey(language=key.language)):
            raise ProtocolError("unknown_queue", f"this centre does not serve the language {key.language!r}")

    async def _rejoin(self, conn: Connection, ticket: str) -> None:
        # The directory, not the store, knows a live ticket: a decision must depend only on
        # the switchboard's state (a centre's new leader replays decisions: telepresence/centre).
        session = self.directory.customer_by_ticket(ticket)
        if session is None:
            raise ProtocolError("unknown_ticket", "that ticket has expired; please join the queue again")
        if session.conn is not None:
            self.directory.by_conn.pop(session.conn.id, None)
            session.conn.close(4001, "this conversation was opened in another tab")
        session.conn = conn
        session.dropped_until = None
        session.last_status = None
        self.reports.owe_status(session.customer_id)
        self.directory.by_conn[conn.id] = session
        now = self.clock()
        conn.send(
            {
                "type": "welcome",
                "ticket": session.ticket,
                "customer_key": self.authority.customer_key(session.customer_id),
                "queue": str(session.key),
                "rejoined": True,
                "greeter": self.media.greets,
                **self._ice_fields(),
            }
        )
        conn.send({"type": "transcript", "messages": await self.store.get_chat(session.ticket)})
        if session.call_id:
            call = self.directory.calls[session.call_id]
            agent = self.directory.agents.get(call.agent_id)
            conn.send(
                {
                    "type": "call_started",
                    "call_id": call.id,
                    "agent": {"name": call.agent_id},
                    "rejoined": True,
                }
            )
            if agent:
                agent.conn.send({"type": "peer_status", "call_id": call.id, "status": "connected"})
        else:
            await self.lifecycle.apply(self.matchmaker.resume(session.customer_id, now))
        logger.info("customer %s rejoined", session.customer_id)

    def _ice_fields(self) -> dict[str, object]:
        """``ice_servers`` (TURN credentials of this socket's own) and ``ice_transport_policy``.

        Minted from the switchboard's wall clock and an id from ``self.ids``: a centre's new
        leader replaying this step mints the same ones (telepresence/centre)."""
        ice = IceConfig.from_settings(self.settings)
        return ice.browser_fields(self.ids.new_id("turn") if ice.has_turn else "", self.wall_clock())

    async def _login(self, conn: Connection, message: p.Login) -> None:
        try:
            claims = self.authority.verify(message.token, self.wall_clock())
        except AuthError as exc:
            raise ProtocolError("auth_failed", str(exc)) from None
        staff = self.directory.staff(claims)
        previous = staff.get(claims.name)
        if previous is not None:
            # The newest tab (or a reload within the grace period) wins; calls carry over.
            if previous.dropped_until is None:
                self.directory.by_conn.pop(previous.conn.id, None)
                previous.conn.close(4001, "logged in from another tab")
            previous.conn = conn
            session = previous
            if session.dropped_until is not None:
                session.dropped_until = None
                if session.wants_available and not session.wrap_up:
                    await self.lifecycle.apply(
                        self.matchmaker.set_available(session.agent_id, True, self.clock())
                    )
                self.directory.send_peer_status(session, "connected")
        else:
            session = AgentSession(claims, conn)
            staff[claims.name] = session
            if claims.role == "agent":
                now = self.clock()
                await self.lifecycle.apply(
                    self.matchmaker.add_agent(
                        claims.name, now, skills=claims.skills, languages=claims.languages
                    )
                )
        self.directory.by_conn[conn.id] = session
        conn.send(
            {
                "type": "logged_in",
                "name": claims.name,
                "role": claims.role,
                "skills": list(claims.skills),
                "languages": list(claims.languages),
                "status": self.directory.agent_status(session),
                "calls": [
                    {
                        **self.directory.call_for_agent(self.directory.calls[c]),
                        "transcript": await self.lifecycle.transcript_of(self.directory.calls[c]),
                    }
                    for c in self.directory.calls_of(session)
                ],
                **self._ice_fields(),
            }
        )
        if claims.role == "operator":
            conn.send(self.host_control.status())
        cameras = self.media.agent_cameras
        if cameras is not None and cameras.publishing(claims.name):
            conn.send({"type": "camera_source", "source": "whip"})  # it was said before this console came
        for indicator in self.media.call_taps.indicators(claims.name) if self.media.call_taps else []:
            conn.send(indicator)  # a supervisor watching since before this console came
        for offer_id in sorted(session.offers):  # offers pending when the old tab went
            await self.lifecycle.send_offer(session, offer_id)
        logger.info("agent %s logged in (%s)", claims.name, claims.role)
