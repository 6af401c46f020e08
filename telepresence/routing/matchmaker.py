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

import bisect
import enum
import itertools
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from telepresence.routing.estimate import HandleTimes, expected_wait
from telepresence.routing.events import (
    AgentSetAway,
    CallEnded,
    ChoiceOffered,
    Event,
    OfferMade,
    OfferWithdrawn,
    Paired,
)
from telepresence.routing.queues import GENERAL, QueueKey, QueueRegister


class RoutingError(Exception):
    """A request the matchmaker cannot carry out (unknown id, wrong state)."""


class CustomerState(enum.Enum):
    WAITING = "waiting"  # in the queue, offered as soon as an agent frees up
    CHOOSING = "choosing"  # returning customer deciding: wait for their agent, or any
    WAITING_FOR_AGENT = "waiting_for_agent"  # held for their last agent until prefer_until
    SUSPENDED = "suspended"  # tab dropped: keeps its place, not offered until it rejoins
    OFFERED = "offered"  # an offer to one agent is pending
    IN_CALL = "in_call"


HELD = (CustomerState.CHOOSING, CustomerState.WAITING_FOR_AGENT)
_CapacityView = tuple[list[int], int, int]  # competing places (sorted), calls held, admits left


class AgentState(enum.Enum):
    AVAILABLE = "available"
    AWAY = "away"
    WRAP_UP = "wrap_up"  # after-call work: no offers, but back soon (counts for the wait estimate)


SEATED = (AgentState.AVAILABLE, AgentState.WRAP_UP)  # agents whose seats the estimator counts


@dataclass
class _Customer:
    id: str
    key: QueueKey
    place: int
    joined_at: float
    state: CustomerState = CustomerState.WAITING
    last_agent: str | None = None
    prefer_until: float | None = None
    offer_id: str | None = None
    agent_id: str | None = None
    call_started_at: float | None = None
    declined_by: dict[str, float] = field(default_factory=dict)  # agent id -> until


@dataclass
class _Agent:
    id: str
    skills: frozenset[str]
    languages: frozenset[str]
    capacity: int
    state: AgentState
    idle_since: float
    customers: set[str] = field(default_factory=set)  # offered or in a call
    misses: int = 0

    def serves(self, key: QueueKey) -> bool:
        skill_ok = key.skill == GENERAL or key.skill in self.skills
        language_ok = key.language == GENERAL or not self.languages or key.language in self.languages
        return skill_ok and language_ok

    @property
    def free_seats(self) -> int:
        if self.state is not AgentState.AVAILABLE:
            return 0
        return max(0, self.capacity - len(self.customers))


@dataclass
class _Offer:
    id: str
    customer_id: str
    agent_id: str
    expires_at: float


@dataclass(frozen=True)
class CustomerStatus:
    """What a customer is told about their wait."""

    customer_id: str
    state: CustomerState
    position: int | None  # 1 = next; None once offered or in a call
    expected_wait_s: float | None  # None: no agent online to estimate from
    at_capacity: bool = False  # the CPU budget, not (only) the agents, holds them back now


@dataclass(frozen=True)
class QueueStats:
    key: QueueKey
    waiting: int
    longest_wait_s: float
    answered: int
    answered_in_target: int
    abandoned: int

    @property
    def service_level(self) -> float | None:
        """Share of answered customers answered within the target time."""
        return self.answered_in_target / self.answered if self.answered else None


class Matchmaker:
    """Queues, agents and offers. See the module docstring for the policy."""

    def __init__(
        self,
        *,
        offer_timeout_s: float = 20.0,
        affinity_window_s: float = 300.0,
        decline_cooloff_s: float = 60.0,
        max_misses: int = 3,
        service_target_s: float = 20.0,
        handle_times: HandleTimes | None = None,
        wrap_up: bool = False,
        skills: Iterable[str] = (),
        languages: Iterable[str] = (),
    ) -> None:
        """``skills``, ``languages``: the labels the centre configures (their queues stand when empty)."""
        self.offer_timeout_s = offer_timeout_s
        # With wrap-up, an available agent whose call ends takes no offer until end_wrap_up().
        self.wrap_up = wrap_up
        self.affinity_window_s = affinity_window_s
        self.decline_cooloff_s = decline_cooloff_s
        self.max_misses = max_misses
        self.service_target_s = service_target_s
        self.handle_times = handle_times or HandleTimes()
        self._customers: dict[str, _Customer] = {}
        self._agents: dict[str, _Agent] = {}
        self._offers: dict[str, _Offer] = {}
        # WAITING customers only, per queue, as sorted (place, customer id) pairs.
        self._queues: dict[QueueKey, list[tuple[int, str]]] = {}
        # Returning customers held for (or choosing) their last agent, per agent, sorted.
        self._preferring: dict[str, list[tuple[int, str]]] = {}
        # Customers with something for tick() to expire besides offers.
        self._timed: set[str] = set()
        self.queues = QueueRegister(skills, languages)
        # Queues whose customers' statuses may have changed since take_changed_queues().
        self._changed: set[QueueKey] = set()
        self._next_place = 0
        self._next_offer = 0
        # How many more offers the machine's CPU budget allows now; None: no limit (admission.py).
        self._admits: int | None = None
        self._places: list[int] | None = None  # everyone's place in line, sorted; None: to redo

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
        agent = _Agent(agent_id, frozenset(skills), frozenset(languages), capacity, state, idle_since=now)
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
        back: list[_Customer] = []
        for offer in self._offers_of(agent):
            events += self._take_back(offer, now, reason="agent_away", count_miss=False, back=back, freed=[])
        return events + self._offer_on(back, [], now)

    def remove_agent(self, agent_id: str, now: float) -> list[Event]:
        """Log an agent out or drop them: their customers go back to their place in the queue."""
        agent = self._agent(agent_id)
        agent.state = AgentState.AWAY
        self._touch_agent(agent)
        events: list[Event] = []
        back: list[_Customer] = []  # everyone goes back first, then all are offered on
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
        customer = _Customer(customer_id, key, self._next_place, joined_at=now, last_agent=last_agent)
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
        customer.state = CustomerState.SUSPENDED
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

    # ----------------------------------------------------------------- offers

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
        back: list[_Customer] = []
        freed: list[_Agent] = []
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

    # ---------------------------------------------------------------- reading

    def status(self, customer_id: str, now: float) -> CustomerStatus:
        """Where one customer stands: position in their queue and expected wait."""
        return self._capacity_status(self._queue_status(customer_id, now), self._capacity_view())

    def _queue_status(self, customer_id: str, now: float) -> CustomerStatus:
        """:meth:`status` as the agents alone make it (the CPU budget is :meth:`_capacity_status`'s)."""
        customer = self._customer(customer_id)
        if customer.state in (CustomerState.OFFERED, CustomerState.IN_CALL):
            return CustomerStatus(customer_id, customer.state, None, 0.0)
        queue = self._queues.get(customer.key, [])
        ahead = bisect.bisect_left(queue, (customer.place, customer.id))
        if customer.state is CustomerState.WAITING_FOR_AGENT:
            agent = self._agents.get(customer.last_agent or "")
            wait = self._agent_wait(agent, customer) if agent else None
            return CustomerStatus(customer_id, customer.state, ahead + 1, wait)
        return CustomerStatus(customer_id, customer.state, ahead + 1, self._queue_wait(customer, ahead))

    def statuses(self, now: float, keys: Collection[QueueKey] | None = None) -> dict[str, CustomerStatus]:
        """Every customer's status (for pushing updates), in one pass per queue.

        ``keys``: only the customers of these queues (say, :meth:`take_changed_queues`).
        """
        result: dict[str, CustomerStatus] = {}
        view = self._capacity_view()
        for key, queue in self._queues.items():
            if keys is not None and key not in keys:
                continue
            free, total = self._slots(key)
            mean = self.handle_times.mean(key)
            for ahead, (place, customer_id) in enumerate(queue):
                wait = expected_wait(ahead, free, total, mean)
                status = CustomerStatus(customer_id, CustomerState.WAITING, ahead + 1, wait)
                result[customer_id] = (
                    status if view is None else self._capacity_status(status, view, place, mean)
                )
        for customer_id, customer in self._customers.items():
            if customer.state is not CustomerState.WAITING and (keys is None or customer.key in keys):
                result[customer_id] = self._capacity_status(self._queue_status(customer_id, now), view)
        return result

    def take_changed_queues(self) -> set[QueueKey]:
        """The queues whose customers' statuses may have changed since the last call; clears them.

        A queue changes when a customer joins, leaves or changes state in it, when its
        handle-time average moves, and when an agent who serves it changes availability
        or seats (which moves the expected waits).
        """
        changed, self._changed = self._changed, set()
        return changed

    def queue_stats(self, now: float) -> list[QueueStats]:
        """Per queue: waiting count, longest wait, answered, in target, abandoned."""
        waiting: dict[QueueKey, list[_Customer]] = {key: [] for key in self.queues}
        for customer in self._customers.values():
            if customer.state not in (CustomerState.OFFERED, CustomerState.IN_CALL):
                waiting.setdefault(customer.key, []).append(customer)
        stats = []
        for key in sorted(waiting):
            counters = self.queues.counters(key)
            people = waiting[key]
            longest = max((now - c.joined_at for c in people), default=0.0)
            stats.append(
                QueueStats(
                    key,
                    len(people),
                    longest,
                    counters.answered,
                    counters.answered_in_target,
                    counters.abandoned,
                )
            )
        return stats

    # -------------------------------------------------------------- admission

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

    def admission_waiting(self, now: float) -> int:
        """Customers the CPU budget holds back now (an agent would take them sooner)."""
        if self._admits is None:
            return 0
        return sum(1 for status in self.statuses(now).values() if status.at_capacity)

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
            first: _Customer | None = None
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

    def _capacity_view(self) -> _CapacityView | None:
        """For :meth:`_capacity_status`: the places of everyone competing for a call (sorted),
        the calls the machine holds (offered or live) and the admits left; None: no limit."""
        if self._admits is None:
            return None
        if self._places is None:  # redone only after someone joined, left or moved line
            # The queues hold exactly the WAITING customers, the preference lines the held ones.
            lines = itertools.chain(self._queues.values(), self._preferring.values())
            self._places = sorted(place for line in lines for place, _ in line)
        return self._places, sum(len(a.customers) for a in self._agents.values()), self._admits

    def _capacity_status(
        self,
        status: CustomerStatus,
        view: _CapacityView | None,
        place: int | None = None,
        mean: float | None = None,
    ) -> CustomerStatus:
        """A status with the CPU budget in it: a call frees CPU as it ends, like a seat, whatever
        the queue. The wait is the longer of the agents' and the machine's; the customer is held
        back by capacity when the machine's is the longer (an agent would be there sooner).
        ``place`` and ``mean`` (the customer's, and their queue's handle time) when known."""
        agent_wait = status.expected_wait_s
        if (
            view is None
            or agent_wait is None
            or status.state in (CustomerState.OFFERED, CustomerState.IN_CALL)
        ):
            return status  # no limit; or nobody to serve them: agents, not CPU, are what is missing
        if place is None or mean is None:
            customer = self._customers[status.customer_id]
            place, mean = customer.place, self.handle_times.mean(customer.key)
        places, calls, admits = view
        cpu_wait = expected_wait(bisect.bisect_left(places, place), admits, calls + admits, mean)
        at_capacity = cpu_wait is None or cpu_wait > agent_wait
        wait = None if cpu_wait is None else max(agent_wait, cpu_wait)
        return CustomerStatus(status.customer_id, status.state, status.position, wait, at_capacity)

    def agent_states(self) -> dict[str, str]:
        """Each agent's state: ``available``, ``busy`` (no free seat), ``wrap_up`` or ``away``."""
        result = {}
        for agent in self._agents.values():
            if agent.state is not AgentState.AVAILABLE:
                result[agent.id] = agent.state.value
            else:
                result[agent.id] = "available" if agent.free_seats else "busy"
        return result

    def agent_customers(self, agent_id: str) -> frozenset[str]:
        return frozenset(self._agent(agent_id).customers)

    def customer_state(self, customer_id: str) -> CustomerState | None:
        customer = self._customers.get(customer_id)
        return customer.state if customer else None

    def customer_agent(self, customer_id: str) -> str | None:
        customer = self._customers.get(customer_id)
        return customer.agent_id if customer else None

    def has_agent(self, agent_id: str) -> bool:
        return agent_id in self._agents

    def offer(self, offer_id: str) -> tuple[str, str, float] | None:
        """(customer id, agent id, expires at) of a pending offer."""
        offer = self._offers.get(offer_id)
        return (offer.customer_id, offer.agent_id, offer.expires_at) if offer else None

    # --------------------------------------------------------------- internals

    def _customer(self, customer_id: str) -> _Customer:
        try:
            return self._customers[customer_id]
        except KeyError:
            raise RoutingError(f"unknown customer {customer_id!r}") from None

    def _agent(self, agent_id: str) -> _Agent:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise RoutingError(f"unknown agent {agent_id!r}") from None

    def _touch_agent(self, agent: _Agent) -> None:
        """An agent's seats or availability changed: so did the waits in every queue they serve."""
        self._changed.update(key for key in self.queues if agent.serves(key))

    def _forget_customer(self, customer: _Customer) -> None:
        """The customer is gone; so is their queue if nobody is left in it and the centre never named it."""
        del self._customers[customer.id]
        if self.queues.gone(customer.key):
            self._queues.pop(customer.key, None)
            self.handle_times.forget(customer.key)

    def _insert(self, customer: _Customer) -> None:
        customer.state = CustomerState.WAITING
        self._places = None
        self._changed.add(customer.key)
        bisect.insort(self._queues.setdefault(customer.key, []), (customer.place, customer.id))

    def _remove(self, customer: _Customer) -> None:
        self._places = None
        queue = self._queues[customer.key]
        index = bisect.bisect_left(queue, (customer.place, customer.id))
        assert queue[index][1] == customer.id
        del queue[index]
        self._changed.add(customer.key)

    def _hold(self, customer: _Customer, state: CustomerState) -> None:
        customer.state = state
        self._places = None
        self._timed.add(customer.id)
        held = self._preferring.setdefault(customer.last_agent or "", [])
        bisect.insort(held, (customer.place, customer.id))
        self._touch_held(customer)

    def _unhold(self, customer: _Customer) -> None:
        self._places = None
        held = self._preferring[customer.last_agent or ""]
        held.remove((customer.place, customer.id))
        self._touch_held(customer)
        if not customer.declined_by:
            self._timed.discard(customer.id)

    def _touch_held(self, customer: _Customer) -> None:
        """The line of customers held for one agent changed: their waits may have moved."""
        self._changed.add(customer.key)
        agent = self._agents.get(customer.last_agent or "")
        if agent is not None:
            self._touch_agent(agent)

    def _stop_holding(self, customer: _Customer) -> None:
        """A held (or suspended) customer goes back to their place in the queue."""
        if customer.state in HELD:
            self._unhold(customer)
        customer.prefer_until = None
        self._insert(customer)

    def _release_preference(self, customer: _Customer, now: float) -> list[Event]:
        self._stop_holding(customer)
        return self._offer_customer(customer, now)

    def _offer_customer(self, customer: _Customer, now: float) -> list[Event]:
        """Offer a WAITING customer to the longest-idle eligible agent with a free seat."""
        events: list[Event] = []
        while customer.state is CustomerState.WAITING and self._may_offer():
            best: _Agent | None = None
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

    def _next_for(self, agent: _Agent, now: float) -> _Customer | None:
        # 1. Returning customers who asked for this agent (or are still choosing).
        preferred = self._preferring.get(agent.id)
        if preferred:
            return self._customers[preferred[0][1]]
        # 2. The earliest place at the head of the queues this agent serves.
        best: _Customer | None = None
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

    def _make_offer(self, customer: _Customer, agent: _Agent, now: float) -> list[Event]:
        self._next_offer += 1
        if self._admits is not None:
            self._admits -= 1
        offer = _Offer(f"offer-{self._next_offer}", customer.id, agent.id, now + self.offer_timeout_s)
        self._offers[offer.id] = offer
        customer.state = CustomerState.OFFERED
        customer.offer_id = offer.id
        customer.prefer_until = None
        agent.customers.add(customer.id)
        self._changed.add(customer.key)
        self._touch_agent(agent)
        returning = customer.last_agent is not None
        return [OfferMade(offer.id, customer.id, agent.id, offer.expires_at, returning=returning)]

    def _withdraw(self, offer: _Offer, now: float, *, reason: str, count_miss: bool) -> list[Event]:
        """Take back one pending offer, then offer on: see :meth:`_take_back` and :meth:`_offer_on`."""
        back: list[_Customer] = []
        freed: list[_Agent] = []
        events = self._take_back(offer, now, reason=reason, count_miss=count_miss, back=back, freed=freed)
        return events + self._offer_on(back, freed, now)

    def _take_back(
        self,
        offer: _Offer,
        now: float,
        *,
        reason: str,
        count_miss: bool,
        back: list[_Customer],
        freed: list[_Agent],
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

    def _offer_on(self, back: list[_Customer], freed: list[_Agent], now: float) -> list[Event]:
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

    def _offers_of(self, agent: _Agent) -> list[_Offer]:
        """An agent's pending offers, earliest customer place first."""
        offered = [self._customers[c] for c in agent.customers]
        return [
            self._offers[c.offer_id]  # type: ignore[index]
            for c in sorted(offered, key=lambda c: c.place)
            if c.state is CustomerState.OFFERED
        ]

    def _slots(self, key: QueueKey) -> tuple[int, int]:
        """(free seats, all seats) of available agents serving ``key``."""
        free = total = 0
        for agent in self._agents.values():
            if agent.state in SEATED and agent.serves(key):
                total += agent.capacity
                free += agent.free_seats
        return free, total

    def _queue_wait(self, customer: _Customer, ahead: int | None = None) -> float | None:
        if ahead is None:
            queue = self._queues.get(customer.key, [])
            ahead = bisect.bisect_left(queue, (customer.place, customer.id))
        free, total = self._slots(customer.key)
        return expected_wait(ahead, free, total, self.handle_times.mean(customer.key))

    def _agent_wait(self, agent: _Agent, customer: _Customer) -> float | None:
        if agent.state not in SEATED:
            return None
        ahead = bisect.bisect_left(self._preferring.get(agent.id, []), (customer.place, customer.id))
        return expected_wait(ahead, agent.free_seats, agent.capacity, self.handle_times.mean(customer.key))
