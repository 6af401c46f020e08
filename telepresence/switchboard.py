"""The switchboard: the async shell around the Matchmaker.

It owns the sessions of connected customers and agents, applies client messages
to the pure :class:`~telepresence.routing.Matchmaker`, turns its events into
messages, pushes queue positions when they change, and runs the one timer task
that expires offers, affinity windows, rejoin grace periods and wrap-up.

Connections are reached only through the :class:`Connection` protocol, whose
``send`` never blocks: one slow socket can never stall another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from media.room import Role
from telepresence import protocol as p
from telepresence.admission import Admission, ShedStep, sender_limits
from telepresence.auth import Claims, TokenAuthority, new_id
from telepresence.calls import Call
from telepresence.config import Settings, labels
from telepresence.host_control import HostControl, is_host_message
from telepresence.media_control import MediaControl
from telepresence.metrics import Metrics
from telepresence.protocol import ProtocolError
from telepresence.reception import Reception
from telepresence.routing import (
    AgentSetAway,
    CallEnded,
    ChoiceOffered,
    CustomerState,
    Event,
    HandleTimes,
    Matchmaker,
    OfferMade,
    OfferWithdrawn,
    Paired,
    RoutingError,
)
from telepresence.sessions import AgentSession, Connection, CustomerSession, Message, history_summary
from telepresence.store import Store

logger = logging.getLogger(__name__)

MEDIA_MESSAGES = (p.WebRtcOffer, p.WebRtcAnswer, p.SetLayout, p.ScreenShare, p.MediaStats)


class Switchboard(Reception):
    """Pairs customers with agents over the signalling sockets."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        authority: TokenAuthority,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.authority = authority
        self.metrics = metrics
        self.clock = clock
        self.wall_clock = wall_clock
        self.matchmaker = Matchmaker(
            offer_timeout_s=settings.offer_timeout_s,
            affinity_window_s=settings.affinity_window_s,
            decline_cooloff_s=settings.decline_cooloff_s,
            max_misses=settings.max_missed_offers,
            service_target_s=settings.service_target_s,
            handle_times=HandleTimes(prior_s=settings.default_handle_time_s),
            wrap_up=settings.wrap_up_s > 0,
            skills=labels(settings.skills),
            languages=labels(settings.languages),
        )
        self.customers: dict[str, CustomerSession] = {}
        self.agents: dict[str, AgentSession] = {}
        self.operators: dict[str, AgentSession] = {}  # avatar operators: never offered customers
        self.calls: dict[str, Call] = {}
        self._by_conn: dict[str, CustomerSession | AgentSession] = {}
        # Customers to tell their status at the next publish even if their queue did not change.
        self._status_owed: set[str] = set()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self._closing = False
        self.media = MediaControl(
            settings,
            metrics,
            send=self._send_call,
            end_call=self._end_call_for_media,
            requeue_call=self._requeue_for_media,
        )
        self.host_control = HostControl(
            self.media,
            send_operator=self._send_operator,
            active_calls=lambda: [c for c in self.calls.values() if c.active],
        )
        self.admission = Admission(
            budget_pct=settings.cpu_budget_pct,
            shed_pct=settings.cpu_shed_pct,
            call_pct=settings.call_cpu_pct,
            metrics=metrics,
            on_sample=self._wake.set,  # the timer step hands the new figure to the matchmaker
            on_shed=self._shed,
        )

    # --------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await self.media.start()
        self._timer = asyncio.create_task(self._run_timers(), name="switchboard-timers")
        await self.admission.start()

    async def stop(self) -> None:
        """Refuse new work, tell every socket, stop the timer task. Safe to call twice."""
        self._closing = True
        for session in list(self._by_conn.values()):
            session.conn.close(1001, "server shutting down")  # type: ignore[union-attr]
        await self.host_control.close()
        for call in self.calls.values():
            self.media.close(call)
        for customer in self.customers.values():
            lobby, customer.lobby = customer.lobby, None
            if lobby is not None:  # a waiting customer's greeter
                lobby.end("shutdown")
                self.media.close(lobby)
        await self.media.stop()
        await self.admission.stop()
        if self._timer is not None:
            self._timer.cancel()
            try:
                await self._timer
            except asyncio.CancelledError:
                pass
            self._timer = None

    # ------------------------------------------------------------------ input

    async def handle(self, conn: Connection, message: p.ClientMessage) -> None:
        """Apply one validated client message. Raises ProtocolError for the client to see."""
        session = self._by_conn.get(conn.id)
        is_operator = isinstance(session, AgentSession) and session.claims.role == "operator"
        if is_operator and (is_host_message(message) or isinstance(message, p.WebRtcOffer)):
            # Outside the lock too: the studio's offer gathers ICE.
            reply = await self.host_control.handle(session.agent_id, message)  # type: ignore[union-attr]
            if reply is not None:
                conn.send(reply)
            self._wake.set()
            return
        if isinstance(message, MEDIA_MESSAGES):
            # Outside the lock: answering an offer gathers ICE and takes a while.
            call, role = self._media_call_of(conn)
            try:
                await self.media.handle(call, role, message)
            finally:
                self._wake.set()  # a new room has receipts to push
            if isinstance(session, CustomerSession) and call is session.lobby and session.last_status:
                # A greeter that just appeared says where the customer stands straight away.
                status = session.last_status
                self.media.announce(call, status["position"], status["expected_wait_s"])
            return
        async with self._lock:
            if self._closing:
                raise ProtocolError("shutting_down", "the server is shutting down")
            session = self._by_conn.get(conn.id)
            if isinstance(message, p.Ping):
                conn.send({"type": "pong"})
                return
            if session is None:
                await self._handle_anonymous(conn, message)
            elif isinstance(session, CustomerSession):
                await self._handle_customer(session, message)
            else:
                await self._handle_agent(session, message)
            self._publish()
            self._wake.set()

    async def disconnected(self, conn: Connection) -> None:
        """A socket closed. Agents drop at once; customers keep their place for a grace period."""
        async with self._lock:
            session = self._by_conn.pop(conn.id, None)
            now = self.clock()
            if (
                isinstance(session, AgentSession)
                and self._staff(session.claims).get(session.agent_id) is session
            ):
                await self._agent_dropped(session, now)
            elif isinstance(session, CustomerSession) and session.conn is conn:
                session.conn = None
                session.dropped_until = now + self.settings.rejoin_grace_s
                logger.info(
                    "customer %s dropped; keeping place for %.0fs",
                    session.customer_id,
                    self.settings.rejoin_grace_s,
                )
                if session.call_id:
                    self._send_agent_of(
                        session, {"type": "peer_status", "call_id": session.call_id, "status": "reconnecting"}
                    )
                else:
                    await self._apply(self.matchmaker.suspend(session.customer_id, now))
            self._publish()
            self._wake.set()

    async def _agent_dropped(self, session: AgentSession, now: float) -> None:
        """An agent's socket closed: calls wait a grace period for a reload, offers go elsewhere."""
        if session.claims.role != "agent" or not self.matchmaker.has_agent(session.agent_id):
            self._staff(session.claims).pop(session.agent_id, None)
            return
        if self._calls_of(session) and self.settings.agent_grace_s > 0:
            logger.info(
                "agent %s dropped; keeping calls for %.0fs", session.agent_id, self.settings.agent_grace_s
            )
            session.dropped_until = now + self.settings.agent_grace_s
            await self._apply(self.matchmaker.set_available(session.agent_id, False, now))
            for call_id in self._calls_of(session):
                customer = self.customers.get(self.calls[call_id].customer_id)
                if customer is not None and customer.conn is not None:
                    customer.conn.send({"type": "peer_status", "call_id": call_id, "status": "reconnecting"})
            return
        await self._remove_agent(session, now)

    async def _remove_agent(self, session: AgentSession, now: float) -> None:
        logger.info("agent %s gone", session.agent_id)
        del self.agents[session.agent_id]
        for call_id in session.wrap_up:
            self.calls.pop(call_id, None)
        await self._apply(self.matchmaker.remove_agent(session.agent_id, now))

    def _staff(self, claims: Claims) -> dict[str, AgentSession]:
        return self.agents if claims.role == "agent" else self.operators

    # -------------------------------------------------------------- customers

    async def _handle_customer(self, session: CustomerSession, message: p.ClientMessage) -> None:
        now = self.clock()
        if isinstance(message, p.Chat):
            entry = {"from": "customer", "name": session.name, "text": message.text, "at": self.wall_clock()}
            await self.store.append_chat(session.ticket, entry)
            out = {"type": "chat", **entry}
            session.conn.send(out)  # type: ignore[union-attr]
            self._send_agent_of(session, {**out, "call_id": session.call_id})
        elif isinstance(message, p.Choose):
            try:
                events = self.matchmaker.choose(session.customer_id, message.wait_for == "agent", now)
            except RoutingError as exc:
                raise ProtocolError("out_of_order", str(exc)) from None
            await self._apply(events)
        elif isinstance(message, p.Leave):
            if session.call_id is None:
                self._count_abandoned(session)
            await self._apply(self.matchmaker.leave(session.customer_id, now))
            if session.customer_id in self.customers:
                await self._forget_customer(session, "left")
            session.conn.send({"type": "left"})  # type: ignore[union-attr]
        elif isinstance(message, p.EndCall):
            if not session.call_id:
                raise ProtocolError("out_of_order", "there is no call to end")
            await self._apply(self.matchmaker.end_call(session.customer_id, now, reason="customer_hung_up"))
        elif isinstance(message, p.Join | p.Rejoin):
            raise ProtocolError("out_of_order", "this socket has already joined")
        else:
            raise ProtocolError("forbidden", f"customers cannot send {message.type!r}")

    # ----------------------------------------------------------------- agents

    async def _handle_agent(self, session: AgentSession, message: p.ClientMessage) -> None:
        now = self.clock()
        is_agent = session.claims.role == "agent"
        if isinstance(message, p.SetStatus) and is_agent:
            session.wants_available = message.status == "available"
            if not session.wrap_up:
                await self._apply(
                    self.matchmaker.set_available(session.agent_id, session.wants_available, now)
                )
            session.conn.send({"type": "agent_status", "status": self._agent_status(session)})
        elif isinstance(message, p.SetAutoAnswer) and is_agent:
            session.auto_answer = message.enabled
            session.conn.send({"type": "auto_answer", "enabled": message.enabled})
            for offer_id in list(session.offers) if message.enabled else ():
                await self._apply(self.matchmaker.accept(offer_id, session.agent_id, now))
        elif isinstance(message, p.Accept | p.Decline) and is_agent:
            action = self.matchmaker.accept if isinstance(message, p.Accept) else self.matchmaker.decline
            try:
                events = action(message.offer_id, session.agent_id, now)
            except RoutingError as exc:
                raise ProtocolError("no_such_offer", str(exc)) from None
            await self._apply(events)
        elif isinstance(message, p.Chat | p.EndCall) and is_agent:
            call = self._current_call(session)
            if isinstance(message, p.Chat):
                customer = self.customers[call.customer_id]
                entry = {
                    "from": "agent",
                    "name": session.agent_id,
                    "text": message.text,
                    "at": self.wall_clock(),
                }
                await self.store.append_chat(customer.ticket, entry)
                out = {"type": "chat", **entry}
                if customer.conn:
                    customer.conn.send(out)
                session.conn.send({**out, "call_id": call.id})
            else:
                await self._apply(self.matchmaker.end_call(call.customer_id, now, reason="agent_hung_up"))
        elif isinstance(message, p.WrapUp) and is_agent:
            if message.call_id not in session.wrap_up:
                raise ProtocolError("out_of_order", "that call is not in wrap-up")
            await self._finish_wrap_up(session, message.call_id, message.notes)
        elif isinstance(message, p.Join | p.Rejoin | p.Login):
            raise ProtocolError("out_of_order", "this socket is already logged in")
        else:
            raise ProtocolError("forbidden", f"{session.claims.role}s cannot send {message.type!r}")

    def _current_call(self, session: AgentSession) -> Call:
        calls = self._calls_of(session)
        if not calls:
            raise ProtocolError("out_of_order", "you are not in a call")
        return self.calls[calls[-1]]

    def _media_call_of(self, conn: Connection) -> tuple[Call, Role]:
        """The live call a socket's media message is about, and the sender's side of it."""
        session = self._by_conn.get(conn.id)
        if session is None:
            raise ProtocolError("not_joined", "join the queue or log in first")
        if isinstance(session, CustomerSession):
            call = self.calls.get(session.call_id or "")
            role: Role = "customer"
            if call is None and self.media.greets:
                if session.lobby is None:
                    session.lobby = Call(new_id("lobby"), session.customer_id, "", started_at=self.clock())
                call = session.lobby
        elif session.claims.role == "agent":
            calls = self._calls_of(session)
            call = self.calls[calls[-1]] if calls else None
            role = "agent"
        else:
            raise ProtocolError("forbidden", "operators have no calls")
        if call is None or not call.active:
            raise ProtocolError("out_of_order", "media can be negotiated only in a call")
        return call, role

    def _send_operator(self, name: str | None, message: Message) -> None:
        """Send to one operator, or to every operator but ``message["except"]`` when ``name`` is None."""
        if name is not None:
            sessions = [self.operators.get(name)]
        else:
            skip = message.pop("except", None)
            sessions = [s for n, s in self.operators.items() if n != skip]
        for session in sessions:
            if session is not None and session.dropped_until is None:
                session.conn.send(message)

    def _send_call(self, call: Call, role: Role, message: Message) -> None:
        """Send to one side of a call, if that side is connected."""
        if role == "agent":
            agent = self.agents.get(call.agent_id)
            conn = agent.conn if agent is not None and agent.dropped_until is None else None
        else:
            customer = self.customers.get(call.customer_id)
            conn = customer.conn if customer is not None else None
        if conn is not None:
            conn.send(message)

    async def _end_call_for_media(self, call: Call, reason: str) -> None:
        async with self._lock:
            if call.active and self.matchmaker.customer_state(call.customer_id) is CustomerState.IN_CALL:
                await self._apply(self.matchmaker.end_call(call.customer_id, self.clock(), reason=reason))
                self._publish()
                self._wake.set()

    async def _requeue_for_media(self, call: Call) -> None:
        """The call's media process died: the call ends as an agent drop ends it (reason
        ``agent_left``), the customer back at their place in the queue."""
        async with self._lock:
            if call.active and self.matchmaker.customer_state(call.customer_id) is CustomerState.IN_CALL:
                await self._apply(self.matchmaker.requeue_call(call.customer_id, self.clock()))
                self._publish()
                self._wake.set()

    async def _finish_wrap_up(self, session: AgentSession, call_id: str, notes: str) -> None:
        del session.wrap_up[call_id]
        if notes:
            call = self.calls.get(call_id)
            if call is not None:
                await self.store.add_history(
                    call.customer_id, {"agent": session.agent_id, "notes": notes, "call_id": call_id}
                )
        self.calls.pop(call_id, None)
        if not session.wrap_up and self.matchmaker.has_agent(session.agent_id):
            # Back to what the agent chose; a tab that is gone (grace period) stays away.
            available = session.wants_available and session.dropped_until is None
            await self._apply(
                self.matchmaker.end_wrap_up(session.agent_id, self.clock(), available=available)
            )
        session.conn.send({"type": "agent_status", "status": self._agent_status(session)})

    # ----------------------------------------------------------------- events

    async def _apply(self, events: list[Event]) -> None:
        """Turn matchmaker events into messages (and more events, for auto-answer)."""
        pending = list(events)
        while pending:
            event = pending.pop(0)
            now = self.clock()
            if isinstance(event, OfferMade):
                pending += await self._offer_made(event, now)
            elif isinstance(event, OfferWithdrawn):
                self.metrics.offers.labels(event.reason).inc()
                agent = self.agents.get(event.agent_id)
                if agent is not None:
                    agent.offers.discard(event.offer_id)
                    agent.conn.send(
                        {"type": "offer_withdrawn", "offer_id": event.offer_id, "reason": event.reason}
                    )
            elif isinstance(event, Paired):
                await self._paired(event, now)
            elif isinstance(event, ChoiceOffered):
                customer = self.customers[event.customer_id]
                if customer.conn:
                    customer.conn.send(
                        {
                            "type": "choice",
                            "agent_name": event.agent_id,
                            "agent_wait_s": _round(event.agent_wait_s),
                            "any_wait_s": _round(event.any_wait_s),
                        }
                    )
            elif isinstance(event, AgentSetAway):
                agent = self.agents.get(event.agent_id)
                if agent is not None:
                    agent.wants_available = False
                    agent.conn.send({"type": "agent_status", "status": "away", "reason": event.reason})
            elif isinstance(event, CallEnded):
                pending += await self._call_ended(event, now)

    async def _offer_made(self, event: OfferMade, now: float) -> list[Event]:
        agent = self.agents[event.agent_id]
        agent.offers.add(event.offer_id)
        if agent.auto_answer and agent.dropped_until is None:
            return self.matchmaker.accept(event.offer_id, agent.agent_id, now)
        await self._send_offer(agent, event.offer_id)
        return []

    async def _send_offer(self, agent: AgentSession, offer_id: str) -> None:
        pending = self.matchmaker.offer(offer_id)
        if pending is None:
            return
        customer = self.customers[pending[0]]
        history = await self.store.get_history(customer.customer_id)
        agent.conn.send(
            {
                "type": "offer",
                "offer_id": offer_id,
                "expires_in_s": round(max(0.0, pending[2] - self.clock()), 1),
                "customer": customer.public(),
                "transcript": await self.store.get_chat(customer.ticket),
                "history": history_summary(history),
            }
        )

    async def _paired(self, event: Paired, now: float) -> None:
        self.metrics.offers.labels("accepted").inc()
        self.metrics.time_to_answer.observe(event.waited_s)
        agent = self.agents[event.agent_id]
        agent.offers.discard(event.offer_id)
        customer = self.customers[event.customer_id]
        call = Call(new_id("call"), customer.customer_id, agent.agent_id, started_at=now)
        self.calls[call.id] = call
        customer.call_id = call.id
        customer.last_status = None  # so a later re-queue always pushes a fresh status
        lobby, customer.lobby = customer.lobby, None
        if lobby is not None:
            self.media.adopt(lobby, call)  # the customer's media carries on into the call
        await self._save_ticket(customer)
        if customer.conn:
            customer.conn.send(
                {"type": "call_started", "call_id": call.id, "agent": {"name": agent.agent_id}}
            )
        agent.conn.send(
            {
                "type": "call_started",
                **self._call_for_agent(call),
                "offer_id": event.offer_id,
                "transcript": await self.store.get_chat(customer.ticket),
            }
        )
        agent.conn.send({"type": "agent_status", "status": self._agent_status(agent)})
        if self.admission.shed_level:
            agent.conn.send(sender_limits(self.admission.shedding, call.id))
        logger.info("call %s: customer %s with agent %s", call.id, customer.customer_id, agent.agent_id)

    async def _call_ended(self, event: CallEnded, now: float) -> list[Event]:
        customer = self.customers.get(event.customer_id)
        call = self.calls.get(customer.call_id) if customer and customer.call_id else None
        if call is None or not call.end(event.reason):
            return []
        self.metrics.calls.labels(event.reason).inc()
        self.media.close(call)
        assert customer is not None
        customer.call_id = None
        message = {
            "type": "call_ended",
            "call_id": call.id,
            "reason": event.reason,
            "requeued": event.requeued,
        }
        if customer.conn:
            customer.conn.send(message)
        agent = self.agents.get(event.agent_id)
        events: list[Event] = []
        if event.requeued:
            self.calls.pop(call.id, None)
            await self._save_ticket(customer)
        else:
            await self.store.add_history(
                customer.customer_id,
                {
                    "agent": event.agent_id,
                    "topic": customer.topic,
                    "ended_at": self.wall_clock(),
                    "duration_s": round(now - call.started_at, 1),
                },
            )
            await self._forget_customer(customer, event.reason)
            if agent is not None and self.settings.wrap_up_s > 0:
                # The matchmaker already holds the agent in wrap-up; this is when it ends.
                agent.wrap_up[call.id] = now + self.settings.wrap_up_s
            else:
                self.calls.pop(call.id, None)
        if agent is not None:
            agent.conn.send({**message, "wrap_up_s": self.settings.wrap_up_s if not event.requeued else 0})
            agent.conn.send({"type": "agent_status", "status": self._agent_status(agent)})
        return events

    async def _forget_customer(self, session: CustomerSession, reason: str) -> None:
        self.customers.pop(session.customer_id, None)
        lobby, session.lobby = session.lobby, None
        if lobby is not None:
            lobby.end(reason)
            self.media.close(lobby)
        if session.conn is not None:
            self._by_conn.pop(session.conn.id, None)
        await self.store.delete_ticket(session.ticket)
        await self.store.delete_chat(session.ticket)

    # ----------------------------------------------------------------- timers

    async def _run_timers(self) -> None:
        """The one task that expires offers, affinity windows, grace periods and wrap-up."""
        while True:
            deadline = self._next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            self._wake.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass
            try:
                async with self._lock:
                    await self._expire(self.clock())
                    await self._admit()
                    self.media.push_receipts([c for c in self.calls.values() if c.active], self.clock())
                    self._publish()
            except Exception:
                # A bug in one expiry must not stop every later one.
                logger.exception("timer step failed")

    def _next_deadline(self) -> float | None:
        times = [self.matchmaker.next_deadline()]
        times += [c.dropped_until for c in self.customers.values()]
        times += [until for a in self.agents.values() for until in a.wrap_up.values()]
        times += [a.dropped_until for a in self.agents.values()]
        if any(c.active and c.room is not None for c in self.calls.values()):
            times.append(self.media.next_receipt_at)
        return min((t for t in times if t is not None), default=None)

    async def _expire(self, now: float) -> None:
        await self._apply(self.matchmaker.tick(now))
        for session in list(self.customers.values()):
            if session.dropped_until is not None and session.dropped_until <= now:
                logger.info("customer %s did not come back", session.customer_id)
                session.dropped_until = None
                if session.call_id is None:
                    self._count_abandoned(session)
                await self._apply(self.matchmaker.leave(session.customer_id, now))
                if session.customer_id in self.customers:
                    await self._forget_customer(session, "dropped")
        for agent in list(self.agents.values()):
            if agent.dropped_until is not None and agent.dropped_until <= now:
                await self._remove_agent(agent, now)
                continue
            for call_id, until in list(agent.wrap_up.items()):
                if until <= now:
                    await self._finish_wrap_up(agent, call_id, "")

    async def _admit(self) -> None:
        """Tell the matchmaker how many calls the CPU budget lets start now (telepresence/admission.py)."""
        now = self.clock()
        starts = [c.started_at for c in self.calls.values() if c.active]
        offers = sum(len(a.offers) for a in self.agents.values())
        await self._apply(self.matchmaker.set_admission(self.admission.seats(now, starts, offers), now))

    def _shed(self, step: ShedStep) -> None:
        """Running calls shed (or get back) quality: each agent's browser caps its screen sender,
        and each room holds its screen tile to the step whatever the browser sends."""
        self.media.shed(step)
        for call in self.calls.values():
            if call.active:
                self._send_call(call, "agent", sender_limits(step, call.id))

    # --------------------------------------------------------------- outbound

    def _publish(self) -> None:
        """Push each customer's position and wait if it changed.

        Only the queues the matchmaker reports changed are read, and the customers owed a
        fresh status (a tab that rejoined), so a message that moves nobody costs next to
        nothing however long the queues are. (Gauges are refreshed when /metrics is read.)
        """
        changed = self.matchmaker.take_changed_queues()
        owed, self._status_owed = self._status_owed, set()
        if not changed and not owed:
            return
        now = self.clock()
        statuses = self.matchmaker.statuses(now, changed)
        for customer_id in owed - statuses.keys():
            if self.matchmaker.customer_state(customer_id) is not None:
                statuses[customer_id] = self.matchmaker.status(customer_id, now)
        for customer_id, status in statuses.items():
            session = self.customers.get(customer_id)
            if session is None or session.conn is None or status.state is CustomerState.IN_CALL:
                continue
            message = {
                "type": "queue_status",
                "state": status.state.value,
                "position": status.position,
                "expected_wait_s": _round(status.expected_wait_s),
                "capacity": status.at_capacity,
            }
            if status.at_capacity and not (session.last_status or {}).get("capacity"):
                self.metrics.admission_refusals.inc()
            if message != session.last_status:
                session.last_status = message
                session.conn.send(message)
                if session.lobby is not None:
                    self.media.announce(session.lobby, status.position, message["expected_wait_s"])

    def _count_abandoned(self, session: CustomerSession) -> None:
        # Counters never lose a label, so a queue the centre never named is counted as "other".
        standing = self.matchmaker.queues.is_standing(session.key)
        self.metrics.abandoned.labels(str(session.key) if standing else "other").inc()

    def refresh_gauges(self) -> None:
        self.media.refresh_gauges()
        now = self.clock()
        # Only the queues that exist now: one that was forgotten must not linger in /metrics.
        for gauge in (self.metrics.waiting, self.metrics.longest_wait, self.metrics.service_level):
            gauge.clear()
        for stats in self.matchmaker.queue_stats(now):
            label = str(stats.key)
            self.metrics.waiting.labels(label).set(stats.waiting)
            self.metrics.longest_wait.labels(label).set(stats.longest_wait_s)
            if stats.service_level is not None:
                self.metrics.service_level.labels(label).set(stats.service_level)
        counts = dict.fromkeys(("available", "busy", "away", "wrap_up"), 0)
        for agent in self.agents.values():
            if agent.claims.role == "agent":
                counts[self._agent_status(agent)] += 1
        for state, count in counts.items():
            self.metrics.agents.labels(state).set(count)
        self.metrics.admission_waiting.set(self.matchmaker.admission_waiting(now))

    def status_report(self) -> Message:
        """Aggregates for /api/status: no customer's name or chat."""
        now = self.clock()
        queues = [
            {
                "queue": str(s.key),
                "waiting": s.waiting,
                "longest_wait_s": round(s.longest_wait_s, 1),
                "answered": s.answered,
                "abandoned": s.abandoned,
                "service_level": s.service_level,
            }
            for s in self.matchmaker.queue_stats(now)
        ]
        agents = dict.fromkeys(("available", "busy", "away", "wrap_up"), 0)
        for agent in self.agents.values():
            if agent.claims.role == "agent":
                agents[self._agent_status(agent)] += 1
        live = sum(1 for c in self.calls.values() if c.active)
        admission = self.admission.report(waiting=self.matchmaker.admission_waiting(now))
        return {"queues": queues, "agents": agents, "calls": {"active": live}, "admission": admission}

    def _agent_status(self, session: AgentSession) -> str:
        if session.wrap_up:
            return "wrap_up"
        if not self.matchmaker.has_agent(session.agent_id):
            return "away"
        return self.matchmaker.agent_states()[session.agent_id]

    def _calls_of(self, session: AgentSession) -> list[str]:
        return [c.id for c in self.calls.values() if c.agent_id == session.agent_id and c.active]

    async def _transcript_of(self, call: Call) -> list[Message]:
        customer = self.customers.get(call.customer_id)
        return await self.store.get_chat(customer.ticket) if customer else []

    def _call_for_agent(self, call: Call) -> Message:
        customer = self.customers.get(call.customer_id)
        return {"call_id": call.id, "customer": customer.public() if customer else None}

    def _send_agent_of(self, session: CustomerSession, message: Message) -> None:
        call = self.calls.get(session.call_id or "")
        agent = self.agents.get(call.agent_id) if call else None
        if agent is not None:
            agent.conn.send(message)

    async def _save_ticket(self, session: CustomerSession) -> None:
        record = {"customer_id": session.customer_id, "call_id": session.call_id}
        await self.store.put_ticket(session.ticket, record, ttl_s=self.settings.rejoin_grace_s + 86400)


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds)
