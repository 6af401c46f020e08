"""The Matchmaker: who is offered to whom, and when. Pure logic.

No I/O, no asyncio, no clock of its own: every call takes ``now`` (seconds, any
monotonic origin) and returns the events it caused. The async shell
(:mod:`telepresence.switchboard`) turns events into messages and calls
:meth:`Matchmaker.tick` at :meth:`Matchmaker.next_deadline`.

Policy, in this order:

1. A returning customer is offered first to the agent they last talked to. If
   that agent is free, at once; if that agent is busy, the customer is asked to
   choose (wait for that agent, or the next available) and keeps their place while
   choosing; if they wait, that agent gets them as soon as a seat frees within the
   affinity window, after which they fall back to any eligible agent.
2. Otherwise the longest-idle eligible agent with a free seat gets the customer.
3. An agent with a free seat takes the waiting customer with the earliest place
   among the queues they serve (FIFO per queue). A customer's place is fixed when
   they first join: a customer whose offer was declined or timed out, whose agent
   dropped, or whose tab rejoined keeps it, so they go back ahead of everyone who
   joined after them.

A pending offer expires after ``offer_timeout_s``; a declined or expired offer
goes to the next eligible agent, and the agent who let it go is not offered that
customer again for ``decline_cooloff_s``. An agent who misses ``max_misses`` offers
in a row is set away.
"""

from __future__ import annotations

from collections.abc import Iterable

from telepresence.routing.errors import RoutingError
from telepresence.routing.events import CallEnded, ChoiceOffered, Event, OfferWithdrawn
from telepresence.routing.offers import Offers
from telepresence.routing.queues import QueueKey
from telepresence.routing.records import (
    HELD,
    SEATED,
    Agent,
    AgentState,
    Customer,
    CustomerState,
    CustomerStatus,
    QueueStats,
)
from telepresence.routing.status import Statuses

__all__ = ["AgentState", "CustomerState", "CustomerStatus", "Matchmaker", "QueueStats", "RoutingError"]


class Matchmaker(Offers, Statuses):
    """Queues, agents and offers. See the module docstring for the policy.

    The state and its bookkeeping are :class:`~telepresence.routing.state.MatchState`'s, the
    offer lifecycle :class:`~telepresence.routing.offers.Offers`', what it reports
    :class:`~telepresence.routing.status.Statuses`'; here are the commands of agents and customers.
    Its options (timeouts, windows, handle times, wrap-up, the centre's labels) are the
    keyword arguments of :class:`~telepresence.routing.state.MatchState`.
    """

    # ----------------------------------------------------------------- agents

    def add_agent(
        self,
        agent_id: str,
        now: float,
        *,
        skills: Iterable[str] = (),
        languages: Iterable[str] = (),
        capacity: int = 1,
        available: bool = False,
    ) -> list[Event]:
        """Log an agent in (away unless ``available``)."""
        if agent_id in self._agents:
            raise RoutingError(f"agent {agent_id!r} is already logged in")
        if capacity < 1:
            raise RoutingError("capacity must be at least 1")
        state = AgentState.AVAILABLE if available else AgentState.AWAY
        agent = Agent(agent_id, frozenset(skills), frozenset(languages), capacity, state, idle_since=now)
        self._agents[agent_id] = agent
        self.queues.name_labels(agent.skills, agent.languages)
        self._touch_agent(agent)
        return self._fill_agent(agent_id, now) if available else []

    def set_available(self, agent_id: str, available: bool, now: float) -> list[Event]:
        """Mark an agent available (they get offers) or away (they get none)."""
        agent = self._agent(agent_id)
        new_state = AgentState.AVAILABLE if available else AgentState.AWAY
        if agent.state is new_state:
            return []
        agent.state = new_state
        agent.idle_since = now
        self._touch_agent(agent)
        if available:
            agent.misses = 0
            return self._fill_agent(agent_id, now)
        # Going away withdraws pending offers; calls in progress carry on.
        events: list[Event] = []
        back: list[Customer] = []
        for offer in self._offers_of(agent):
            events += self._take_back(offer, now, reason="agent_away", count_miss=False, back=back, freed=[])
        return events + self._offer_on(back, [], now)

    def remove_agent(self, agent_id: str, now: float) -> list[Event]:
        """Log an agent out or drop them: their customers go back to their place in the queue."""
        agent = self._agent(agent_id)
        agent.state = AgentState.AWAY
        self._touch_agent(agent)
        events: list[Event] = []
        back: list[Customer] = []  # everyone goes back first, then all are offered on
        for customer_id in sorted(agent.customers, key=lambda c: self._customers[c].place):
            customer = self._customers[customer_id]
            if customer.state is CustomerState.OFFERED:
                offer = self._offers[customer.offer_id]  # type: ignore[index]
                events += self._take_back(
                    offer, now, reason="agent_left", count_miss=False, back=back, freed=[]
                )
            else:
                customer.state = CustomerState.WAITING
                customer.agent_id = None
                customer.call_started_at = None
                agent.customers.discard(customer_id)
                events.append(CallEnded(customer_id, agent_id, reason="agent_left", requeued=True))
                self._insert(customer)
                back.append(customer)
        del self._agents[agent_id]
        # Customers waiting for this agent fall back to anyone, keeping their place.
        for _, customer_id in list(self._preferring.get(agent_id, [])):
            customer = self._customers[customer_id]
            self._stop_holding(customer)
            back.append(customer)
        self._preferring.pop(agent_id, None)
        for customer_id in self._timed:
            self._customers[customer_id].declined_by.pop(agent_id, None)
        return events + self._offer_on(back, [], now)

    def requeue_call(self, customer_id: str, now: float, *, reason: str = "agent_left") -> list[Event]:
        """A call that cannot go on through nobody's choice (its media process died) ends as an
        agent drop ends it: the customer goes back to their place in the queue; the agent stays,
        their seat free."""
        customer = self._customer(customer_id)
        if customer.state is not CustomerState.IN_CALL:
            raise RoutingError("this customer is not in a call")
        agent_id = customer.agent_id
        assert agent_id is not None
        customer.agent_id = None
        customer.call_started_at = None
        self._insert(customer)
        events: list[Event] = [CallEnded(customer_id, agent_id, reason=reason, requeued=True)]
        agent = self._agents.get(agent_id)
        if agent is not None:
            agent.customers.discard(customer_id)
            self._touch_agent(agent)
        return events + self._offer_on([customer], [agent] if agent is not None else [], now)

    # -------------------------------------------------------------- customers

    def enqueue(
        self,
        customer_id: str,
        key: QueueKey,
        now: float,
        *,
        last_agent: str | None = None,
    ) -> list[Event]:
        """A customer joins a queue. ``last_agent``: who they talked to last time, if anyone."""
        if customer_id in self._customers:
            raise RoutingError(f"customer {customer_id!r} is already queued")
        customer = Customer(customer_id, key, self._next_place, joined_at=now, last_agent=last_agent)
        self._next_place += 1
        self._customers[customer_id] = customer
        self.queues.joined(key)
        self._changed.add(key)
        agent = self._agents.get(last_agent) if last_agent else None
        if agent is not None and agent.state in SEATED and agent.serves(key):
            if agent.free_seats and self._may_offer():
                return self._make_offer(customer, agent, now)
            if agent.free_seats:  # at capacity: held for their agent, who takes them first later
                customer.prefer_until = now + self.affinity_window_s
                self._hold(customer, CustomerState.WAITING_FOR_AGENT)
                return []
            customer.prefer_until = now + self.affinity_window_s
            self._hold(customer, CustomerState.CHOOSING)
            return [
                ChoiceOffered(
                    customer_id,
                    agent.id,
                    agent_wait_s=self._agent_wait(agent, customer),
                    any_wait_s=self._queue_wait(customer),
                )
            ]
        self._insert(customer)
        return self._offer_customer(customer, now)

    def choose(self, customer_id: str, wait_for_agent: bool, now: float) -> list[Event]:
        """A returning customer's answer: wait for their last agent, or take the next available."""
        customer = self._customer(customer_id)
        if customer.state is not CustomerState.CHOOSING:
            raise RoutingError("there is no choice to make now")
        if wait_for_agent:
            customer.state = CustomerState.WAITING_FOR_AGENT
            self._changed.add(customer.key)
            return []
        return self._release_preference(customer, now)

    def leave(self, customer_id: str, now: float) -> list[Event]:
        """A customer leaves (or their grace period ran out). Counted abandoned unless in a call."""
        customer = self._customer(customer_id)
        events: list[Event] = []
        if customer.state is CustomerState.IN_CALL:
            return self.end_call(customer_id, now, reason="customer_left")
        if customer.state is CustomerState.OFFERED:
            offer = self._offers.pop(customer.offer_id)  # type: ignore[arg-type]
            self._return_admit()
            self._agents[offer.agent_id].customers.discard(customer_id)
            self._touch_agent(self._agents[offer.agent_id])
            events.append(OfferWithdrawn(offer.id, customer_id, offer.agent_id, "customer_left"))
            events += self._fill_agent(offer.agent_id, now)
            if self._admits is not None:  # the admit it gave back may serve another agent's customer
                events += self._resume_offers(now)
        elif customer.state is CustomerState.WAITING:
            self._remove(customer)
        elif customer.state in HELD:
            self._unhold(customer)
        self.queues.counters(customer.key).abandoned += 1
        self._changed.add(customer.key)
        self._timed.discard(customer_id)
        self._forget_customer(customer)
        return events

    def suspend(self, customer_id: str, now: float) -> list[Event]:
        """A waiting customer's tab dropped: keep their place, offer them to nobody."""
        customer = self._customer(customer_id)
        events: list[Event] = []
        if customer.state is CustomerState.OFFERED:
            offer = self._offers[customer.offer_id]  # type: ignore[index]
            events += self._withdraw(offer, now, reason="customer_left", count_miss=False)
        elif customer.state is CustomerState.WAITING:
            self._remove(customer)
        elif customer.state in HELD:
            self._unhold(customer)
        elif customer.state is not CustomerState.SUSPENDED:
            return events  # in a call: the call decides what a drop means
        self._suspend(customer)
        self._changed.add(customer.key)
        return events

    def resume(self, customer_id: str, now: float) -> list[Event]:
        """A suspended customer is back: at their old place."""
        customer = self._customer(customer_id)
        if customer.state is not CustomerState.SUSPENDED:
            return []
        agent = self._agents.get(customer.last_agent or "")
        if agent is not None and customer.prefer_until is not None and now < customer.prefer_until:
            self._hold(customer, CustomerState.WAITING_FOR_AGENT)
            return self._fill_agent(agent.id, now)
        # The window is over, or their agent logged out meanwhile: back to the queue.
        return self._release_preference(customer, now)

    def end_call(self, customer_id: str, now: float, *, reason: str = "completed") -> list[Event]:
        """A call is over: measure its handle time and free the agent's seat."""
        customer = self._customer(customer_id)
        if customer.state is not CustomerState.IN_CALL:
            raise RoutingError("this customer is not in a call")
        agent_id = customer.agent_id
        assert agent_id is not None and customer.call_started_at is not None
        handle = now - customer.call_started_at
        self.handle_times.record(customer.key, handle)
        self._changed.add(customer.key)
        self._forget_customer(customer)
        self._timed.discard(customer_id)
        events: list[Event] = [CallEnded(customer_id, agent_id, reason=reason, requeued=False)]
        agent = self._agents.get(agent_id)
        if agent is not None:
            agent.customers.discard(customer_id)
            agent.idle_since = now
            self._touch_agent(agent)
            if self.wrap_up and agent.state is AgentState.AVAILABLE:
                agent.state = AgentState.WRAP_UP
            else:
                events += self._fill_agent(agent_id, now)
        return events

    def end_wrap_up(self, agent_id: str, now: float, *, available: bool) -> list[Event]:
        """After-call work is done: the agent is available again (or away, if they chose so)."""
        agent = self._agent(agent_id)
        if agent.state is not AgentState.WRAP_UP:
            return self.set_available(agent_id, available, now)
        agent.state = AgentState.AVAILABLE if available else AgentState.AWAY
        agent.idle_since = now
        self._touch_agent(agent)
        return self._fill_agent(agent_id, now) if available else []
