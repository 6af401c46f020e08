"""The offer lifecycle: who is offered to whom, taken back, expired or accepted. Pure: time passed in.

Offers are made longest-idle agent first, earliest place first (FIFO across the queues an
agent serves), a returning customer's last agent before anyone; each one made spends one
admit of the CPU budget (``set_admission``) and each one taken back without becoming a
call returns it. :meth:`Offers.tick` expires offers, affinity windows and decline cool-offs.
"""

from __future__ import annotations

from telepresence.routing.errors import RoutingError
from telepresence.routing.events import AgentSetAway, Event, OfferMade, OfferWithdrawn, Paired
from telepresence.routing.records import HELD, Agent, AgentState, Customer, CustomerState, Offer
from telepresence.routing.state import MatchState


class Offers(MatchState):
    """Making, taking back and settling offers, within the admission budget."""

    def accept(self, offer_id: str, agent_id: str, now: float) -> list[Event]:
        """The agent takes the customer: the call starts."""
        offer = self._offers.get(offer_id)
        if offer is None or offer.agent_id != agent_id:
            raise RoutingError("no such offer for this agent (it may have expired)")
        del self._offers[offer_id]
        agent = self._agents[agent_id]
        agent.misses = 0
        agent.idle_since = now
        customer = self._customers[offer.customer_id]
        customer.state = CustomerState.IN_CALL
        self._changed.add(customer.key)
        customer.offer_id = None
        customer.agent_id = agent_id
        customer.call_started_at = now
        counters = self.queues.counters(customer.key)
        waited = now - customer.joined_at
        counters.answered += 1
        counters.answered_in_target += waited <= self.service_target_s
        return [Paired(customer.id, agent_id, offer_id, waited_s=waited)]

    def decline(self, offer_id: str, agent_id: str, now: float) -> list[Event]:
        """The agent passes: the customer goes to the next eligible agent, keeping their place."""
        offer = self._offers.get(offer_id)
        if offer is None or offer.agent_id != agent_id:
            raise RoutingError("no such offer for this agent (it may have expired)")
        return self._withdraw(offer, now, reason="declined", count_miss=True)

    # ------------------------------------------------------------------- time

    def next_deadline(self) -> float | None:
        """The earliest time at which :meth:`tick` has something to do."""
        times = [o.expires_at for o in self._offers.values()]
        for customer in map(self._customers.__getitem__, self._timed):
            if customer.state in HELD:
                times.append(customer.prefer_until)  # type: ignore[arg-type]
            if customer.declined_by and customer.state is CustomerState.WAITING:
                times.append(min(customer.declined_by.values()))
        return min(times, default=None)

    def tick(self, now: float) -> list[Event]:
        """Expire offers, affinity windows and decline cool-offs due by ``now``.

        Everything due is settled first and only then are offers made, earliest place
        first: two offers expiring together must not let a later customer jump an earlier one.
        """
        events: list[Event] = []
        back: list[Customer] = []
        freed: list[Agent] = []
        for offer in sorted(self._offers.values(), key=lambda o: o.expires_at):
            if offer.expires_at <= now and offer.id in self._offers:
                events += self._take_back(
                    offer, now, reason="timeout", count_miss=True, back=back, freed=freed
                )
        for customer_id in sorted(self._timed, key=lambda c: self._customers[c].place):
            customer = self._customers.get(customer_id)
            if customer is None:
                continue
            if customer.state in HELD and customer.prefer_until is not None and customer.prefer_until <= now:
                self._stop_holding(customer)
                back.append(customer)
            elif customer.declined_by and customer.state is CustomerState.WAITING:
                expired = [a for a, until in customer.declined_by.items() if until <= now]
                for agent_id in expired:
                    del customer.declined_by[agent_id]
                if not customer.declined_by:
                    self._timed.discard(customer.id)
                if expired:
                    back.append(customer)
        return events + self._offer_on(back, freed, now)

    def set_admission(self, limit: int | None, now: float) -> list[Event]:
        """How many more offers the machine's CPU budget allows now (None: no limit).

        The shell sets it afresh from :mod:`telepresence.admission` (counting pending offers
        and new calls as spent); each offer made uses one, each offer taken back returns it.
        At 0 no offer is made: waiting customers keep their places, their statuses say they
        are held back by capacity and their waits count the CPU's turnover too. When the
        limit rises, offers resume in place order.
        """
        if limit is not None and limit < 0:
            raise RoutingError("an admission limit cannot be negative")
        old, self._admits = self._admits, limit
        if old == limit:
            return []
        self._changed.update(self.queues)  # every waiting customer's flag and wait may move
        if old is not None and (limit is None or limit > old):
            return self._resume_offers(now)
        return []

    def _may_offer(self) -> bool:
        return self._admits is None or self._admits > 0

    def _return_admit(self) -> None:
        """An offer was taken back without becoming a call: it no longer uses the budget."""
        if self._admits is not None:
            self._admits += 1

    def _resume_offers(self, now: float) -> list[Event]:
        """Room for calls again: the earliest place any free agent would take goes first, and so on."""
        events: list[Event] = []
        while self._may_offer():
            first: Customer | None = None
            for agent in self._agents.values():
                if agent.free_seats:
                    candidate = self._next_for(agent, now)
                    if candidate is not None and (first is None or candidate.place < first.place):
                        first = candidate
            if first is None:
                break
            if first.state is CustomerState.WAITING:
                made = self._offer_customer(first, now)
            else:  # held for their last agent, who is free
                made = self._fill_agent(first.last_agent or "", now)
            if not made:
                break
            events += made
        return events

    def _release_preference(self, customer: Customer, now: float) -> list[Event]:
        self._stop_holding(customer)
        return self._offer_customer(customer, now)

    def _offer_customer(self, customer: Customer, now: float) -> list[Event]:
        """Offer a WAITING customer to the longest-idle eligible agent with a free seat."""
        events: list[Event] = []
        while customer.state is CustomerState.WAITING and self._may_offer():
            best: Agent | None = None
            for agent in self._agents.values():
                if not agent.free_seats or not agent.serves(customer.key):
                    continue
                if customer.declined_by.get(agent.id, -1.0) > now:
                    continue
                if best is None or agent.idle_since < best.idle_since:
                    best = agent
            if best is None:
                break
            # An earlier customer the same agent could serve goes first (FIFO across queues);
            # then this customer tries the next agent. Each round fills a seat, so it ends.
            events += self._fill_agent(best.id, now)
        return events

    def _fill_agent(self, agent_id: str, now: float) -> list[Event]:
        """Give an agent's free seats to the customers who should have them."""
        agent = self._agents.get(agent_id)
        events: list[Event] = []
        while agent is not None and agent.free_seats and self._may_offer():
            customer = self._next_for(agent, now)
            if customer is None:
                break
            if customer.state is CustomerState.WAITING:
                self._remove(customer)
            elif customer.state in HELD:
                self._unhold(customer)
            events += self._make_offer(customer, agent, now)
        return events

    def _next_for(self, agent: Agent, now: float) -> Customer | None:
        # 1. Returning customers who asked for this agent (or are still choosing).
        preferred = self._preferring.get(agent.id)
        if preferred:
            return self._customers[preferred[0][1]]
        # 2. The earliest place at the head of the queues this agent serves.
        best: Customer | None = None
        for key, queue in self._queues.items():
            if not queue or not agent.serves(key):
                continue
            for place, customer_id in queue:
                if best is not None and place >= best.place:
                    break
                customer = self._customers[customer_id]
                if customer.declined_by.get(agent.id, -1.0) > now:
                    continue  # this agent passed on them recently: look further down
                best = customer
                break
        return best

    def _make_offer(self, customer: Customer, agent: Agent, now: float) -> list[Event]:
        self._next_offer += 1
        if self._admits is not None:
            self._admits -= 1
        offer = Offer(f"offer-{self._next_offer}", customer.id, agent.id, now + self.offer_timeout_s)
        self._offers[offer.id] = offer
        customer.state = CustomerState.OFFERED
        customer.offer_id = offer.id
        customer.prefer_until = None
        agent.customers.add(customer.id)
        self._changed.add(customer.key)
        self._touch_agent(agent)
        returning = customer.last_agent is not None
        return [OfferMade(offer.id, customer.id, agent.id, offer.expires_at, returning=returning)]

    def _withdraw(self, offer: Offer, now: float, *, reason: str, count_miss: bool) -> list[Event]:
        """Take back one pending offer, then offer on: see :meth:`_take_back` and :meth:`_offer_on`."""
        back: list[Customer] = []
        freed: list[Agent] = []
        events = self._take_back(offer, now, reason=reason, count_miss=count_miss, back=back, freed=freed)
        return events + self._offer_on(back, freed, now)

    def _take_back(
        self,
        offer: Offer,
        now: float,
        *,
        reason: str,
        count_miss: bool,
        back: list[Customer],
        freed: list[Agent],
    ) -> list[Event]:
        """Take back a pending offer, making no new one yet.

        The customer returns to their place (unless they left) and joins ``back``; the
        agent joins ``freed``. A miss may set the agent away, taking back their other
        offers too. The caller then calls :meth:`_offer_on` once for the whole batch.
        """
        del self._offers[offer.id]
        self._return_admit()
        customer = self._customers[offer.customer_id]
        agent = self._agents[offer.agent_id]
        agent.customers.discard(customer.id)
        customer.offer_id = None
        self._changed.add(customer.key)
        self._touch_agent(agent)
        events: list[Event] = [OfferWithdrawn(offer.id, customer.id, agent.id, reason)]
        if reason != "customer_left":
            self._insert(customer)
            back.append(customer)
        freed.append(agent)
        if count_miss:
            customer.declined_by[agent.id] = now + self.decline_cooloff_s
            self._timed.add(customer.id)
            agent.misses += 1
            if agent.misses >= self.max_misses and agent.state is AgentState.AVAILABLE:
                agent.state = AgentState.AWAY
                agent.misses = 0
                self._touch_agent(agent)
                events.append(AgentSetAway(agent.id, reason="missed_offers"))
                for other in self._offers_of(agent):
                    events += self._take_back(
                        other, now, reason="agent_away", count_miss=False, back=back, freed=freed
                    )
        return events

    def _offer_on(self, back: list[Customer], freed: list[Agent], now: float) -> list[Event]:
        """After customers went back to their places: offer them on, earliest place first,
        so that nobody later jumps them; then refill the seats the agents in ``freed`` still
        have (a decline, a timeout, a customer gone: they take whoever is next for them)."""
        if self._admits is not None:  # under a CPU limit, what it allows goes in place order
            return self._resume_offers(now)
        events: list[Event] = []
        for customer in sorted(back, key=lambda c: c.place):
            events += self._offer_customer(customer, now)
        for agent in freed:
            events += self._fill_agent(agent.id, now)
        return events
