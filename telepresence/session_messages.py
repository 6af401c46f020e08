"""What a joined customer or a logged-in agent may ask, and what each request does.

Customers chat, choose whom to wait for, leave and hang up; agents set their status
and auto-answer, accept or decline offers, chat, hang up and finish wrap-up. Each
request becomes a matchmaker command whose events the
:class:`~telepresence.call_lifecycle.CallLifecycle` carries out; a request out of
turn raises :class:`~telepresence.protocol.ProtocolError` for the client to see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from telepresence import protocol as p
from telepresence.call_lifecycle import CallLifecycle
from telepresence.calls import Call
from telepresence.directory import Directory
from telepresence.protocol import ProtocolError
from telepresence.routing import Matchmaker, RoutingError
from telepresence.sessions import AgentSession, CustomerSession
from telepresence.store import Store


@dataclass(kw_only=True, eq=False)  # a part of the switchboard, equal only to itself
class SessionMessages:
    """Applies the messages of customers and agents once their socket is known."""

    store: Store
    matchmaker: Matchmaker
    directory: Directory
    lifecycle: CallLifecycle
    clock: Callable[[], float]
    wall_clock: Callable[[], float]

    async def from_customer(self, session: CustomerSession, message: p.ClientMessage) -> None:
        now = self.clock()
        if isinstance(message, p.Chat):
            entry = {"from": "customer", "name": session.name, "text": message.text, "at": self.wall_clock()}
            await self.store.append_chat(session.ticket, entry)
            out = {"type": "chat", **entry}
            session.conn.send(out)  # type: ignore[union-attr]
            self.directory.send_agent_of(session, {**out, "call_id": session.call_id})
        elif isinstance(message, p.Choose):
            try:
                events = self.matchmaker.choose(session.customer_id, message.wait_for == "agent", now)
            except RoutingError as exc:
                raise ProtocolError("out_of_order", str(exc)) from None
            await self.lifecycle.apply(events)
        elif isinstance(message, p.Leave):
            await self.lifecycle.customer_leaves(session, now, "left")
            session.conn.send({"type": "left"})  # type: ignore[union-attr]
        elif isinstance(message, p.EndCall):
            if not session.call_id:
                raise ProtocolError("out_of_order", "there is no call to end")
            await self.lifecycle.apply(
                self.matchmaker.end_call(session.customer_id, now, reason="customer_hung_up")
            )
        elif isinstance(message, p.Join | p.Rejoin):
            raise ProtocolError("out_of_order", "this socket has already joined")
        else:
            raise ProtocolError("forbidden", f"customers cannot send {message.type!r}")

    async def from_agent(self, session: AgentSession, message: p.ClientMessage) -> None:
        now = self.clock()
        is_agent = session.claims.role == "agent"
        apply = self.lifecycle.apply
        if isinstance(message, p.SetStatus) and is_agent:
            session.wants_available = message.status == "available"
            if not session.wrap_up:
                await apply(self.matchmaker.set_available(session.agent_id, session.wants_available, now))
            session.conn.send({"type": "agent_status", "status": self.directory.agent_status(session)})
        elif isinstance(message, p.SetAutoAnswer) and is_agent:
            session.auto_answer = message.enabled
            session.conn.send({"type": "auto_answer", "enabled": message.enabled})
            for offer_id in list(session.offers) if message.enabled else ():
                await apply(self.matchmaker.accept(offer_id, session.agent_id, now))
        elif isinstance(message, p.Accept | p.Decline) and is_agent:
            action = self.matchmaker.accept if isinstance(message, p.Accept) else self.matchmaker.decline
            try:
                events = action(message.offer_id, session.agent_id, now)
            except RoutingError as exc:
                raise ProtocolError("no_such_offer", str(exc)) from None
            await apply(events)
        elif isinstance(message, p.Chat | p.EndCall) and is_agent:
            call = self._current_call(session)
            if isinstance(message, p.Chat):
                customer = self.directory.customers[call.customer_id]
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
                await apply(self.matchmaker.end_call(call.customer_id, now, reason="agent_hung_up"))
        elif isinstance(message, p.WrapUp) and is_agent:
            if message.call_id not in session.wrap_up:
                raise ProtocolError("out_of_order", "that call is not in wrap-up")
            await self.lifecycle.finish_wrap_up(session, message.call_id, message.notes)
        elif isinstance(message, p.Join | p.Rejoin | p.Login):
            raise ProtocolError("out_of_order", "this socket is already logged in")
        else:
            raise ProtocolError("forbidden", f"{session.claims.role}s cannot send {message.type!r}")

    def _current_call(self, session: AgentSession) -> Call:
        calls = self.directory.calls_of(session)
        if not calls:
            raise ProtocolError("out_of_order", "you are not in a call")
        return self.directory.calls[calls[-1]]
