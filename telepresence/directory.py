"""Who is connected and which calls exist: the switchboard's directory.

It holds the sessions of customers, agents and operators, the calls, and which
socket is whose, and it answers the questions every part of the switchboard asks
("which calls has this agent?", "what status does this agent show?"). It also
sends a message to a party of a call when that party's socket is there. It decides
nothing: the switchboard's parts add and remove its entries.
"""

from __future__ import annotations

import hmac

from media.room import Role
from telepresence.auth import Claims
from telepresence.calls import Call
from telepresence.routing import Matchmaker
from telepresence.sessions import AgentSession, Connection, CustomerSession, Message


class Directory:
    """Sessions and calls by id, and the sockets they are reached through."""

    def __init__(self, matchmaker: Matchmaker) -> None:
        self._matchmaker = matchmaker  # read only: an agent's status
        self.customers: dict[str, CustomerSession] = {}
        self.agents: dict[str, AgentSession] = {}
        self.operators: dict[str, AgentSession] = {}  # avatar operators: never offered customers
        self.calls: dict[str, Call] = {}
        self.by_conn: dict[str, CustomerSession | AgentSession] = {}  # connection id -> session

    # ---------------------------------------------------------------- lookups

    def staff(self, claims: Claims) -> dict[str, AgentSession]:
        """The agents or the operators, whichever ``claims`` names one of."""
        return self.agents if claims.role == "agent" else self.operators

    def customer_by_ticket(self, ticket: str) -> CustomerSession | None:
        """The customer a rejoin ticket belongs to (a scan: rejoins are rare next to messages)."""
        wanted = ticket.encode()  # compare_digest takes str only when it is ASCII: a client's may not be
        matches = (c for c in self.customers.values() if hmac.compare_digest(c.ticket.encode(), wanted))
        return next(matches, None)

    def calls_of(self, session: AgentSession) -> list[str]:
        """The ids of an agent's active calls, oldest first."""
        return [c.id for c in self.calls.values() if c.agent_id == session.agent_id and c.active]

    def active_calls(self) -> list[Call]:
        return [c for c in self.calls.values() if c.active]

    def agent_status(self, session: AgentSession) -> str:
        """What an agent is shown as: wrap_up, away, available or busy."""
        if session.wrap_up:
            return "wrap_up"
        if not self._matchmaker.has_agent(session.agent_id):
            return "away"
        return self._matchmaker.agent_state(session.agent_id)

    def agent_counts(self) -> dict[str, int]:
        """How many agents (operators aside) show each status."""
        counts = dict.fromkeys(("available", "busy", "away", "wrap_up"), 0)
        for agent in self.agents.values():
            if agent.claims.role == "agent":
                counts[self.agent_status(agent)] += 1
        return counts

    def call_for_agent(self, call: Call) -> Message:
        """A call as its agent is told of it: its id and what the agent may see of the customer."""
        customer = self.customers.get(call.customer_id)
        return {"call_id": call.id, "customer": customer.public() if customer else None}

    # ---------------------------------------------------------------- sending

    def conn_of(self, call: Call, role: Role) -> Connection | None:
        """The socket of one side of a call, if that side is connected."""
        if role == "agent":
            agent = self.agents.get(call.agent_id)
            return agent.conn if agent is not None and agent.dropped_until is None else None
        customer = self.customers.get(call.customer_id)
        return customer.conn if customer is not None else None

    def send_call(self, call: Call, role: Role, message: Message) -> None:
        """Send to one side of a call, if that side is connected."""
        conn = self.conn_of(call, role)
        if conn is not None:
            conn.send(message)

    def send_agent_of(self, session: CustomerSession, message: Message) -> None:
        """Send to the agent of a customer's call, if there is one and it is connected."""
        call = self.calls.get(session.call_id or "")
        if call is not None:
            self.send_call(call, "agent", message)

    def send_peer_status(self, agent: AgentSession, status: str) -> None:
        """Tell the connected customers of an agent's calls that the agent is ``status``."""
        for call_id in self.calls_of(agent):
            customer = self.customers.get(self.calls[call_id].customer_id)
            if customer is not None and customer.conn is not None:
                customer.conn.send({"type": "peer_status", "call_id": call_id, "status": status})

    def send_operator(self, name: str | None, message: Message) -> None:
        """Send to one operator, or to every operator but ``message["except"]`` when ``name`` is None."""
        if name is not None:
            sessions = [self.operators.get(name)]
        else:
            skip = message.pop("except", None)
            sessions = [s for n, s in self.operators.items() if n != skip]
        for session in sessions:
            if session is not None and session.dropped_until is None:
                session.conn.send(message)
