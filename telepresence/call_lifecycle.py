"""Calls from offer to wrap-up: the matchmaker's events carried out on sessions, calls and sockets.

The pure :class:`~telepresence.routing.Matchmaker` decides; :meth:`CallLifecycle.apply`
turns what it decided into messages and state: an offer goes to an agent (or is
accepted at once for an agent on auto-answer), a pairing starts a :class:`Call`
(a waiting customer's greeter media carries on into it), an ended call is closed,
recorded in the customer's history and held in the agent's wrap-up, and a customer
who leaves is forgotten with their ticket and transcript.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from telepresence.admission import Admission
from telepresence.auth import Ids
from telepresence.calls import Call
from telepresence.config import Settings
from telepresence.directory import Directory
from telepresence.media_control import MediaControl
from telepresence.metrics import Metrics
from telepresence.reports import round_wait
from telepresence.routing import (
    AgentSetAway,
    CallEnded,
    ChoiceOffered,
    Event,
    Matchmaker,
    OfferMade,
    OfferWithdrawn,
    Paired,
)
from telepresence.sessions import AgentSession, CustomerSession, Message, history_summary
from telepresence.shedding import sender_limits
from telepresence.store import Store

logger = logging.getLogger(__name__)


@dataclass(kw_only=True, eq=False)  # a part of the switchboard, equal only to itself
class CallLifecycle:
    """Carries out the matchmaker's events; owns the calls' and customers' comings and goings."""

    settings: Settings
    store: Store
    metrics: Metrics
    matchmaker: Matchmaker
    directory: Directory
    media: MediaControl
    admission: Admission
    clock: Callable[[], float]
    wall_clock: Callable[[], float]
    ids: Ids

    # ----------------------------------------------------------------- events

    async def apply(self, events: list[Event]) -> None:
        """Turn matchmaker events into messages (and more events, for auto-answer)."""
        pending = list(events)
        while pending:
            event = pending.pop(0)
            now = self.clock()
            if isinstance(event, OfferMade):
                pending += await self._offer_made(event, now)
            elif isinstance(event, OfferWithdrawn):
                self.metrics.offers.labels(event.reason).inc()
                agent = self.directory.agents.get(event.agent_id)
                if agent is not None:
                    agent.offers.discard(event.offer_id)
                    agent.conn.send(
                        {"type": "offer_withdrawn", "offer_id": event.offer_id, "reason": event.reason}
                    )
                    # The pending offer showed them busy: say what they are now (available, away).
                    agent.conn.send({"type": "agent_status", "status": self.directory.agent_status(agent)})
            elif isinstance(event, Paired):
                await self._paired(event, now)
            elif isinstance(event, ChoiceOffered):
                customer = self.directory.customers[event.customer_id]
                if customer.conn:
                    customer.conn.send(
                        {
                            "type": "choice",
                            "agent_name": event.agent_id,
                            "agent_wait_s": round_wait(event.agent_wait_s),
                            "any_wait_s": round_wait(event.any_wait_s),
                        }
                    )
            elif isinstance(event, AgentSetAway):
                agent = self.directory.agents.get(event.agent_id)
                if agent is not None:
                    agent.wants_available = False
                    agent.conn.send({"type": "agent_status", "status": "away", "reason": event.reason})
            elif isinstance(event, CallEnded):
                await self._call_ended(event, now)

    # ----------------------------------------------------------------- offers

    async def _offer_made(self, event: OfferMade, now: float) -> list[Event]:
        agent = self.directory.agents[event.agent_id]
        agent.offers.add(event.offer_id)
        if agent.auto_answer and agent.dropped_until is None:
            return self.matchmaker.accept(event.offer_id, agent.agent_id, now)
        await self.send_offer(agent, event.offer_id)
        return []

    async def send_offer(self, agent: AgentSession, offer_id: str) -> None:
        """Show an agent a pending offer: the customer, their transcript and their history."""
        pending = self.matchmaker.offer(offer_id)
        if pending is None:
            return
        customer = self.directory.customers[pending[0]]
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

    # ------------------------------------------------------------------ calls

    async def _paired(self, event: Paired, now: float) -> None:
        self.metrics.offers.labels("accepted").inc()
        self.metrics.time_to_answer.observe(event.waited_s)
        agent = self.directory.agents[event.agent_id]
        agent.offers.discard(event.offer_id)
        customer = self.directory.customers[event.customer_id]
        call = Call(self.ids.new_id("call"), customer.customer_id, agent.agent_id, started_at=now)
        self.directory.calls[call.id] = call
        customer.call_id = call.id
        customer.last_status = None  # so a later re-queue always pushes a fresh status
        lobby, customer.lobby = customer.lobby, None
        if lobby is not None:
            self.media.adopt(lobby, call)  # the customer's media carries on into the call
        await self.save_ticket(customer)
        if customer.conn:
            customer.conn.send(
                {"type": "call_started", "call_id": call.id, "agent": {"name": agent.agent_id}}
            )
        agent.conn.send(
            {
                "type": "call_started",
                **self.directory.call_for_agent(call),
                "offer_id": event.offer_id,
                "transcript": await self.store.get_chat(customer.ticket),
            }
        )
        agent.conn.send({"type": "agent_status", "status": self.directory.agent_status(agent)})
        if self.admission.shed_level:
            agent.conn.send(sender_limits(self.admission.shedding, call.id))
        logger.info("call %s: customer %s with agent %s", call.id, customer.customer_id, agent.agent_id)

    async def _call_ended(self, event: CallEnded, now: float) -> None:
        customer = self.directory.customers.get(event.customer_id)
        call = self.directory.calls.get(customer.call_id) if customer and customer.call_id else None
        if call is None or not call.end(event.reason):
            return
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
        agent = self.directory.agents.get(event.agent_id)
        if event.requeued:
            self.directory.calls.pop(call.id, None)
            await self.save_ticket(customer)
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
            await self.forget_customer(customer, event.reason)
            if agent is not None and self.settings.wrap_up_s > 0:
                # The matchmaker already holds the agent in wrap-up; this is when it ends.
                agent.wrap_up[call.id] = now + self.settings.wrap_up_s
            else:
                self.directory.calls.pop(call.id, None)
        if agent is not None:
            agent.conn.send({**message, "wrap_up_s": self.settings.wrap_up_s if not event.requeued else 0})
            agent.conn.send({"type": "agent_status", "status": self.directory.agent_status(agent)})

    async def finish_wrap_up(self, session: AgentSession, call_id: str, notes: str) -> None:
        """An agent's wrap-up of a call ends (their notes, if any, go into the customer's history)."""
        del session.wrap_up[call_id]
        if notes:
            call = self.directory.calls.get(call_id)
            if call is not None:
                await self.store.add_history(
                    call.customer_id, {"agent": session.agent_id, "notes": notes, "call_id": call_id}
                )
        self.directory.calls.pop(call_id, None)
        if not session.wrap_up and self.matchmaker.has_agent(session.agent_id):
            # Back to what the agent chose; a tab that is gone (grace period) stays away.
            available = session.wants_available and session.dropped_until is None
            await self.apply(self.matchmaker.end_wrap_up(session.agent_id, self.clock(), available=available))
        session.conn.send({"type": "agent_status", "status": self.directory.agent_status(session)})

    async def transcript_of(self, call: Call) -> list[Message]:
        customer = self.directory.customers.get(call.customer_id)
        return await self.store.get_chat(customer.ticket) if customer else []

    # -------------------------------------------------------------- customers

    async def customer_leaves(self, session: CustomerSession, now: float, reason: str) -> None:
        """A customer leaves (or did not come back): out of the queue or call, then forgotten."""
        if session.call_id is None:
            self._count_abandoned(session)
        await self.apply(self.matchmaker.leave(session.customer_id, now))
        if session.customer_id in self.directory.customers:
            await self.forget_customer(session, reason)

    async def forget_customer(self, session: CustomerSession, reason: str) -> None:
        """Drop a customer's session, greeter media, ticket and transcript."""
        self.directory.customers.pop(session.customer_id, None)
        lobby, session.lobby = session.lobby, None
        if lobby is not None:
            lobby.end(reason)
            self.media.close(lobby)
        if session.conn is not None:
            self.directory.by_conn.pop(session.conn.id, None)
        await self.store.delete_ticket(session.ticket)
        await self.store.delete_chat(session.ticket)

    async def save_ticket(self, session: CustomerSession) -> None:
        """Store what a customer's ticket brings a dropped tab back to."""
        record = {"customer_id": session.customer_id, "call_id": session.call_id}
        await self.store.put_ticket(session.ticket, record, ttl_s=self.settings.rejoin_grace_s + 86400)

    def _count_abandoned(self, session: CustomerSession) -> None:
        # Counters never lose a label, so a queue the centre never named is counted as "other".
        standing = self.matchmaker.queues.is_standing(session.key)
        self.metrics.abandoned.labels(str(session.key) if standing else "other").inc()
