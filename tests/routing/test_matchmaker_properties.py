"""Stateful property tests of the Matchmaker: random sequences of everything the shell can do.

A hypothesis state machine drives one Matchmaker with agents logging in and out, customers
joining (some returning to a last agent), choosing, leaving, dropping and rejoining, offers
accepted, declined and left to time out, calls ending, and a fake clock that only moves
forward. Like the switchboard, the machine calls ``tick`` at every ``next_deadline`` it
passes. A model built only from the events checks, after every step:

- no customer is offered or in a call twice, or with two agents at once;
- no agent holds more customers than its capacity;
- FIFO within a queue (judged as each call returns): a customer offered while an
  earlier-place customer of the same queue waits is explained by affinity (the agent is
  their last agent) or by the earlier customer's decline cool-off with that agent; nobody
  is offered again to an agent who passed on them within the cool-off;
- work conservation: no agent sits on a free seat while a customer it may serve waits,
  nor while a customer holds out for them (this is what makes the queues drain);
- positions: the waiting customers of each queue are numbered 1..n in place order, held and
  suspended customers are told the place they will come back to, offered and in-call ones none;
- every status that changed is among those ``take_status_changes()`` names (the switchboard
  pushes only those), each as ``status()`` makes it, and ``statuses()`` of some queues agrees
  with the full ``statuses()``;
- liveness: with every agent available, every offer accepted and time moving past every
  deadline, every customer still queued is eventually served.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from telepresence.routing import (
    GENERAL,
    AgentSetAway,
    CallEnded,
    ChoiceOffered,
    CustomerState,
    Matchmaker,
    OfferMade,
    OfferWithdrawn,
    Paired,
    QueueKey,
)

OFFER_TIMEOUT = 20.0
AFFINITY = 300.0
COOLOFF = 60.0
MAX_MISSES = 2

SKILLS = ("billing", "tech")
LANGUAGES = ("en", "fr")
AGENT_IDS = ("a0", "a1", "a2", "a3")
KEYS = [QueueKey(s, lang) for s in (GENERAL, *SKILLS) for lang in (GENERAL, *LANGUAGES)]
# Steps of the clock: none, small, and just past each of the matchmaker's timers.
TIME_STEPS = st.sampled_from([0.0, 0.5, 3.0, OFFER_TIMEOUT, OFFER_TIMEOUT + 1, COOLOFF + 1, AFFINITY + 1])

HELD = (CustomerState.CHOOSING, CustomerState.WAITING_FOR_AGENT)
QUEUED = (CustomerState.WAITING, *HELD, CustomerState.SUSPENDED)


@dataclass
class AgentModel:
    skills: frozenset[str]
    languages: frozenset[str]
    capacity: int

    def serves(self, key: QueueKey) -> bool:
        return (key.skill == GENERAL or key.skill in self.skills) and (
            key.language == GENERAL or not self.languages or key.language in self.languages
        )


@dataclass
class CustomerModel:
    key: QueueKey
    place: int
    last_agent: str | None
    joined_at: float = 0.0


@dataclass
class Model:
    """What the events say: who is offered to or in a call with whom, and the cool-offs."""

    agents: dict[str, AgentModel] = field(default_factory=dict)
    customers: dict[str, CustomerModel] = field(default_factory=dict)
    offers: dict[str, tuple[str, str]] = field(default_factory=dict)  # offer id -> (customer, agent)
    calls: dict[str, str] = field(default_factory=dict)  # customer -> agent
    cooloff: dict[tuple[str, str], float] = field(default_factory=dict)  # (customer, agent) -> until
    served: set[str] = field(default_factory=set)

    def assigned(self) -> dict[str, str]:
        """Customer -> agent, for every pending offer and call."""
        result = dict(self.calls)
        for customer_id, agent_id in self.offers.values():
            assert customer_id not in result, f"{customer_id} is offered and in a call, or offered twice"
            result[customer_id] = agent_id
        return result

    def cooling(self, customer_id: str, agent_id: str, now: float) -> bool:
        return self.cooloff.get((customer_id, agent_id), -1.0) > now


class MatchmakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.mm = Matchmaker(
            offer_timeout_s=OFFER_TIMEOUT,
            affinity_window_s=AFFINITY,
            decline_cooloff_s=COOLOFF,
            max_misses=MAX_MISSES,
            # One configured skill: other labels make queues that stand only once an agent names them.
            skills=SKILLS[:1],
        )
        self.model = Model()
        self.now = 0.0
        self.next_customer = 0
        self.step_offers: list[OfferMade] = []
        self.told: dict[str, object] = {}  # customer -> their status at the last check

    # ------------------------------------------------------------ bookkeeping

    def apply(self, events: list) -> None:
        """Fold one call's events into the model, checking each as it comes."""
        model = self.model
        for event in events:
            if isinstance(event, OfferMade):
                assigned = model.assigned()
                assert event.customer_id not in assigned, f"{event.customer_id} paired twice: {event}"
                assert event.customer_id in model.customers
                assert event.agent_id in model.agents
                assert event.offer_id not in model.offers
                model.offers[event.offer_id] = (event.customer_id, event.agent_id)
                self.step_offers.append(event)
            elif isinstance(event, OfferWithdrawn):
                assert model.offers.pop(event.offer_id) == (event.customer_id, event.agent_id)
                if event.reason in ("declined", "timeout"):
                    model.cooloff[(event.customer_id, event.agent_id)] = self.now + COOLOFF
            elif isinstance(event, Paired):
                assert model.offers.pop(event.offer_id) == (event.customer_id, event.agent_id)
                assert event.customer_id not in model.calls
                model.calls[event.customer_id] = event.agent_id
                model.served.add(event.customer_id)
            elif isinstance(event, CallEnded):
                assert model.calls.pop(event.customer_id) == event.agent_id
                if not event.requeued:
                    self.forget(event.customer_id)
            elif isinstance(event, ChoiceOffered):
                assert model.customers[event.customer_id].last_agent == event.agent_id
            else:
                assert isinstance(event, AgentSetAway), event
        # FIFO is judged as each call returns (the switchboard ticks at every deadline: a
        # customer back in the queue at a later tick was not waiting when another was offered).
        self.check_fifo()
        self.step_offers = []

    def forget(self, customer_id: str) -> None:
        del self.model.customers[customer_id]
        for pair in [p for p in self.model.cooloff if p[0] == customer_id]:
            del self.model.cooloff[pair]

    def advance(self, seconds: float) -> None:
        """Move the clock forward, ticking at every deadline on the way (as the switchboard does)."""
        target = self.now + seconds
        for _ in range(1000):
            deadline = self.mm.next_deadline()
            if deadline is None or deadline > target:
                break
            self.now = max(self.now, deadline)
            events = self.mm.tick(self.now)
            self.apply(events)
            assert events or self.mm.next_deadline() != deadline or deadline > self.now, (
                f"next_deadline() stays at {deadline} but tick({self.now}) does nothing: a busy loop"
            )
        else:
            raise AssertionError("tick never catches up with next_deadline")
        self.now = target

    def state(self, customer_id: str) -> CustomerState | None:
        return self.mm.customer_state(customer_id)

    def customers_in(self, *states: CustomerState) -> list[str]:
        return sorted(c for c in self.model.customers if self.state(c) in states)

    # ------------------------------------------------------------------ rules

    @initialize(capacity=st.integers(1, 2))
    def start_with_a_general_agent(self, capacity: int) -> None:
        self.model.agents["a0"] = AgentModel(frozenset(), frozenset(), capacity)
        self.apply(self.mm.add_agent("a0", self.now, capacity=capacity, available=True))

    @rule(
        agent_id=st.sampled_from(AGENT_IDS),
        skills=st.frozensets(st.sampled_from(SKILLS)),
        languages=st.frozensets(st.sampled_from(LANGUAGES)),
        capacity=st.integers(1, 2),
        available=st.booleans(),
    )
    def add_agent(self, agent_id, skills, languages, capacity, available) -> None:
        if agent_id in self.model.agents:
            return
        self.model.agents[agent_id] = AgentModel(skills, languages, capacity)
        self.apply(
            self.mm.add_agent(
                agent_id, self.now, skills=skills, languages=languages, capacity=capacity, available=available
            )
        )

    @precondition(lambda self: self.model.agents)
    @rule(data=st.data())
    def remove_agent(self, data) -> None:
        agent_id = data.draw(st.sampled_from(sorted(self.model.agents)))
        events = self.mm.remove_agent(agent_id, self.now)
        del self.model.agents[agent_id]
        # The matchmaker forgets who a departed agent passed on (a new login starts afresh).
        for pair in [p for p in self.model.cooloff if p[1] == agent_id]:
            del self.model.cooloff[pair]
        self.apply(events)
        assert not self.mm.has_agent(agent_id)

    @precondition(lambda self: self.model.agents)
    @rule(data=st.data(), available=st.booleans())
    def set_available(self, data, available: bool) -> None:
        agent_id = data.draw(st.sampled_from(sorted(self.model.agents)))
        self.apply(self.mm.set_available(agent_id, available, self.now))

    @rule(data=st.data(), key=st.just(QueueKey()) | st.sampled_from(KEYS), returning=st.booleans())
    def enqueue(self, data, key: QueueKey, returning: bool) -> None:
        # A returning customer's last agent: mostly someone logged in, so affinity gets exercised.
        last_agent = data.draw(st.sampled_from([*sorted(self.model.agents), "gone"])) if returning else None
        # Ids that do not sort in joining order: order must come from places, never from ids.
        customer_id = f"c{self.next_customer * 37 % 101:03d}-{self.next_customer}"
        self.model.customers[customer_id] = CustomerModel(key, self.next_customer, last_agent, self.now)
        self.next_customer += 1
        self.apply(self.mm.enqueue(customer_id, key, self.now, last_agent=last_agent))

    @precondition(lambda self: self.customers_in(CustomerState.CHOOSING))
    @rule(data=st.data(), wait_for_agent=st.booleans())
    def choose(self, data, wait_for_agent: bool) -> None:
        customer_id = data.draw(st.sampled_from(self.customers_in(CustomerState.CHOOSING)))
        self.apply(self.mm.choose(customer_id, wait_for_agent, self.now))

    @precondition(lambda self: self.model.customers)
    @rule(data=st.data())
    def leave(self, data) -> None:
        customer_id = data.draw(st.sampled_from(sorted(self.model.customers)))
        in_call = customer_id in self.model.calls
        events = self.mm.leave(customer_id, self.now)
        self.apply(events)
        if not in_call:  # a customer in a call leaves through CallEnded
            self.forget(customer_id)
        assert self.state(customer_id) is None

    @precondition(lambda self: self.customers_in(CustomerState.WAITING, *HELD, CustomerState.OFFERED))
    @rule(data=st.data())
    def suspend(self, data) -> None:
        candidates = self.customers_in(CustomerState.WAITING, *HELD, CustomerState.OFFERED)
        customer_id = data.draw(st.sampled_from(candidates))
        self.apply(self.mm.suspend(customer_id, self.now))
        assert self.state(customer_id) is CustomerState.SUSPENDED

    @precondition(lambda self: self.customers_in(CustomerState.SUSPENDED))
    @rule(data=st.data())
    def resume(self, data) -> None:
        customer_id = data.draw(st.sampled_from(self.customers_in(CustomerState.SUSPENDED)))
        self.apply(self.mm.resume(customer_id, self.now))
        assert self.state(customer_id) is not CustomerState.SUSPENDED

    @precondition(lambda self: self.model.offers)
    @rule(data=st.data(), accept=st.booleans())
    def answer_offer(self, data, accept: bool) -> None:
        offer_id = data.draw(st.sampled_from(sorted(self.model.offers)))
        _, agent_id = self.model.offers[offer_id]
        action = self.mm.accept if accept else self.mm.decline
        self.apply(action(offer_id, agent_id, self.now))

    @precondition(lambda self: self.model.calls)
    @rule(data=st.data())
    def end_call(self, data) -> None:
        customer_id = data.draw(st.sampled_from(sorted(self.model.calls)))
        self.apply(self.mm.end_call(customer_id, self.now))
        assert self.state(customer_id) is None

    @rule(seconds=TIME_STEPS)
    def advance_time(self, seconds: float) -> None:
        self.advance(seconds)

    @rule()
    def tick_now(self) -> None:
        self.apply(self.mm.tick(self.now))

    @rule()
    def drain(self) -> None:
        """Liveness: every agent available, every offer accepted, time moving on: all get served."""
        for customer_id in self.customers_in(CustomerState.SUSPENDED):
            self.apply(self.mm.resume(customer_id, self.now))
        # One more agent with a seat for everyone, serving every skill and any language.
        capacity = len(self.model.customers) + 1
        self.model.agents["super"] = AgentModel(frozenset(SKILLS), frozenset(), capacity)
        self.apply(self.mm.add_agent("super", self.now, skills=SKILLS, capacity=capacity, available=True))
        queued = set(self.customers_in(*QUEUED, CustomerState.OFFERED))
        for _ in range(100):
            for agent_id in sorted(self.model.agents):
                self.apply(self.mm.set_available(agent_id, True, self.now))
            self.accept_all()
            self.verify_everything()
            if not self.customers_in(*QUEUED, CustomerState.OFFERED):
                break
            # Free the seats of the agents some customers are holding out for.
            for customer_id, agent_id in sorted(self.model.calls.items()):
                if agent_id != "super":
                    self.apply(self.mm.end_call(customer_id, self.now))
            self.accept_all()
            deadline = self.mm.next_deadline()
            if deadline is not None:
                self.advance(max(0.0, deadline - self.now))
        stuck = {c: self.state(c) for c in self.customers_in(*QUEUED, CustomerState.OFFERED)}
        assert not stuck, f"never served: {stuck}"
        assert queued <= self.model.served
        self.apply(self.mm.remove_agent("super", self.now))
        del self.model.agents["super"]

    def accept_all(self) -> None:
        for offer_id, (_, agent_id) in sorted(self.model.offers.items()):
            if offer_id in self.model.offers:
                self.apply(self.mm.accept(offer_id, agent_id, self.now))

    # ------------------------------------------------------------- invariants

    @invariant()
    def verify_everything(self) -> None:
        mm, model = self.mm, self.model
        assigned = model.assigned()
        # The matchmaker agrees with the events about every customer.
        for customer_id in model.customers:
            state = self.state(customer_id)
            assert state is not None, f"{customer_id} vanished"
            if customer_id in model.calls:
                assert state is CustomerState.IN_CALL
            elif customer_id in assigned:
                assert state is CustomerState.OFFERED
            else:
                assert state in QUEUED, (customer_id, state)
            assert mm.customer_agent(customer_id) == model.calls.get(customer_id)
        # No agent over capacity; each customer with at most one agent.
        seen: dict[str, str] = {}
        for agent_id, agent in model.agents.items():
            assert mm.has_agent(agent_id)
            holding = mm.agent_customers(agent_id)
            assert len(holding) <= agent.capacity, f"{agent_id} over capacity: {sorted(holding)}"
            for customer_id in holding:
                assert customer_id not in seen, f"{customer_id} with {seen[customer_id]} and {agent_id}"
                seen[customer_id] = agent_id
        assert seen == assigned
        self.check_queues_exist_only_while_used()
        self.check_work_conserving()
        self.check_positions()
        self.check_status_changes()
        self.check_queue_stats()

    def check_queues_exist_only_while_used(self) -> None:
        """A queue the centre never named is kept only while someone is in it."""
        queues = self.mm.queues
        for key in KEYS:
            occupants = sum(1 for c in self.model.customers.values() if c.key == key)
            assert queues.occupants(key) == occupants, (key, queues.occupants(key), occupants)
            if key in queues:
                assert occupants or queues.is_standing(key), f"{key} lingers, empty and never named"
            else:
                assert not occupants, f"{key} has customers but no queue"

    def check_fifo(self) -> None:
        """Offers made by this call jumped nobody in their queue without a documented reason."""
        model, now = self.model, self.now
        waiting = self.customers_in(CustomerState.WAITING)
        for offer in self.step_offers:
            if offer.offer_id not in model.offers:
                continue  # already gone again within the same step
            customer = model.customers[offer.customer_id]
            assert not model.cooling(offer.customer_id, offer.agent_id, now), (
                f"{offer.customer_id} offered again to {offer.agent_id}, who passed on them"
            )
            if customer.last_agent == offer.agent_id:
                continue  # affinity: their last agent takes them first
            for other_id in waiting:
                other = model.customers[other_id]
                if other.key != customer.key or other.place > customer.place:
                    continue
                assert model.cooling(other_id, offer.agent_id, now), (
                    f"{offer.customer_id} offered to {offer.agent_id} ahead of {other_id}, "
                    f"who waits in the same queue with an earlier place"
                )

    def check_work_conserving(self) -> None:
        """No agent keeps a free seat while a customer it may take waits."""
        model, now = self.model, self.now
        states = self.mm.agent_states()
        free = [a for a, s in states.items() if s == "available"]
        for customer_id in self.customers_in(CustomerState.WAITING):
            customer = model.customers[customer_id]
            for agent_id in free:
                if model.agents[agent_id].serves(customer.key):
                    assert model.cooling(customer_id, agent_id, now), (
                        f"{agent_id} has a free seat while {customer_id} ({customer.key}) waits"
                    )
        for customer_id in self.customers_in(*HELD):
            agent_id = model.customers[customer_id].last_agent
            assert agent_id in model.agents, f"{customer_id} held for {agent_id}, who logged out"
            assert states.get(agent_id) != "available", f"{customer_id} held for free agent {agent_id}"

    def check_status_changes(self) -> None:
        """Every status that changed since the last check is among take_status_changes()'s (the
        shell pushes only those; a customer in a call hears of the call instead), made as
        statuses() makes it; statuses() of the queues named agrees with the full statuses()."""
        changes = self.mm.take_status_changes(self.now)
        statuses = self.mm.statuses(self.now)
        reported: dict[str, object] = {}
        for status in changes:
            assert status.customer_id not in reported, f"{status.customer_id} named twice"
            reported[status.customer_id] = status
            assert status == statuses[status.customer_id], (status, statuses[status.customer_id])
        assert len(changes) == len(reported)
        for customer_id, status in statuses.items():
            if self.told.get(customer_id) != status and status.state is not CustomerState.IN_CALL:
                assert customer_id in reported, (
                    f"{customer_id}: {self.told.get(customer_id)} -> {status}, unreported"
                )
        keys = {self.model.customers[c].key for c in reported}
        partial = self.mm.statuses(self.now, keys)
        assert partial == {c: s for c, s in statuses.items() if self.model.customers[c].key in keys}
        self.told = dict(statuses)

    def check_queue_stats(self) -> None:
        """queue_stats() (from the lines and indexes) counts what a walk of every customer counts."""
        waiting: dict[QueueKey, list[float]] = {key: [] for key in self.mm.queues}
        for customer_id in self.model.customers:
            customer = self.model.customers[customer_id]
            if self.state(customer_id) not in (CustomerState.OFFERED, CustomerState.IN_CALL):
                waiting[customer.key].append(customer.joined_at)
        stats = {s.key: (s.waiting, s.longest_wait_s) for s in self.mm.queue_stats(self.now)}
        expected = {
            key: (len(at), max((self.now - t for t in at), default=0.0)) for key, at in waiting.items()
        }
        assert stats == expected

    def check_positions(self) -> None:
        model, now = self.model, self.now
        statuses = self.mm.statuses(now)
        assert set(statuses) == set(model.customers)
        by_queue: dict[QueueKey, list[str]] = {}
        for customer_id in self.customers_in(CustomerState.WAITING):
            by_queue.setdefault(model.customers[customer_id].key, []).append(customer_id)
        for key, members in by_queue.items():
            members.sort(key=lambda c: model.customers[c].place)
            positions = [statuses[c].position for c in members]
            assert positions == list(range(1, len(members) + 1)), (key, members, positions)
        for customer_id, status in statuses.items():
            customer = model.customers[customer_id]
            assert status.state is self.state(customer_id)
            assert status == self.mm.status(customer_id, now)
            if status.state in (CustomerState.OFFERED, CustomerState.IN_CALL):
                assert status.position is None
            elif status.state is not CustomerState.WAITING:
                ahead = [
                    c for c in by_queue.get(customer.key, []) if model.customers[c].place < customer.place
                ]
                assert status.position == len(ahead) + 1, (customer_id, status)


class TestMatchmakerMachine(MatchmakerMachine.TestCase):
    settings = settings(
        max_examples=200,
        stateful_step_count=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


@pytest.mark.slow
class TestMatchmakerMachineLong(MatchmakerMachine.TestCase):
    """The same machine, long enough to reach rare orderings (about a minute: --run-slow)."""

    settings = settings(
        max_examples=3000,
        stateful_step_count=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


class WrapUpMachine(MatchmakerMachine):
    """The same invariants with after-call work: a finished call holds its agent in wrap-up."""

    def __init__(self) -> None:
        super().__init__()
        self.mm.wrap_up = True

    @precondition(lambda self: self.model.agents)
    @rule(data=st.data(), available=st.booleans())
    def end_wrap_up(self, data, available: bool) -> None:
        agent_id = data.draw(st.sampled_from(sorted(self.model.agents)))
        self.apply(self.mm.end_wrap_up(agent_id, self.now, available=available))


class TestWrapUpMachine(WrapUpMachine.TestCase):
    settings = settings(
        max_examples=100,
        stateful_step_count=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
