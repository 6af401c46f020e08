"""Stateful property tests of the Matchmaker under an admission limit (telepresence/admission.py).

Random sequences of agents logging in, customers joining (some returning), offers accepted,
declined and timing out, calls ending, customers leaving and dropping, and the shell setting
a new limit. A model built from the events checks, after every step:

- the budget is never overspent: offers made since the limit was set, less those taken back
  without becoming a call, never exceed it;
- work conservation wherever the budget allows: while it has room, no free agent sits while a
  customer they may take waits, or while a returning customer is held for them (the
  admission gate stops offers, nothing else does);
- with no limit, nobody is told they wait for capacity; at 0, a customer first in line with a
  free agent who may take them is told so;
- lifting the limit serves everyone in the end.
"""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from telepresence.routing import (
    GENERAL,
    CallEnded,
    CustomerState,
    Matchmaker,
    OfferMade,
    OfferWithdrawn,
    Paired,
    QueueKey,
)

OFFER_TIMEOUT = 20.0
COOLOFF = 60.0
AGENT_IDS = ("a0", "a1", "a2")
KEYS = (QueueKey(), QueueKey("tech"))
LIMITS = st.sampled_from([None, 0, 0, 1, 2])


class AdmissionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.mm = Matchmaker(
            offer_timeout_s=OFFER_TIMEOUT, affinity_window_s=300, decline_cooloff_s=COOLOFF, max_misses=3
        )
        self.now = 0.0
        self.limit: int | None = None
        self.left: int | None = None  # what the budget still allows, by the events
        self.offers: dict[str, tuple[str, str]] = {}
        self.calls: dict[str, str] = {}
        self.customers: dict[str, QueueKey] = {}
        self.cooloff: dict[tuple[str, str], float] = {}
        self.agents: dict[str, frozenset[str]] = {}
        self.last_agents: dict[str, str | None] = {}
        self.next_customer = 0

    def apply(self, events: list) -> None:
        for event in events:
            if isinstance(event, OfferMade):
                self.offers[event.offer_id] = (event.customer_id, event.agent_id)
                if self.left is not None:
                    self.left -= 1
            elif isinstance(event, OfferWithdrawn):
                del self.offers[event.offer_id]
                if self.left is not None:
                    self.left += 1
                if event.reason in ("declined", "timeout"):
                    self.cooloff[(event.customer_id, event.agent_id)] = self.now + COOLOFF
            elif isinstance(event, Paired):
                del self.offers[event.offer_id]
                self.calls[event.customer_id] = event.agent_id
            elif isinstance(event, CallEnded):
                del self.calls[event.customer_id]
                if not event.requeued:
                    del self.customers[event.customer_id]

    def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while (deadline := self.mm.next_deadline()) is not None and deadline <= target:
            self.now = max(self.now, deadline)
            self.apply(self.mm.tick(self.now))
        self.now = target

    # ------------------------------------------------------------------ rules

    @initialize(limit=LIMITS)
    def start(self, limit: int | None) -> None:
        self.agents["a0"] = frozenset()
        self.apply(self.mm.add_agent("a0", self.now, available=True))
        self.set_limit(limit)

    @rule(limit=LIMITS)
    def set_limit(self, limit: int | None) -> None:
        self.limit = self.left = limit
        self.apply(self.mm.set_admission(limit, self.now))

    @rule(agent_id=st.sampled_from(AGENT_IDS), tech=st.booleans(), capacity=st.integers(1, 2))
    def add_agent(self, agent_id: str, tech: bool, capacity: int) -> None:
        if agent_id in self.agents:
            return
        self.agents[agent_id] = frozenset({"tech"} if tech else ())
        skills = self.agents[agent_id]
        self.apply(self.mm.add_agent(agent_id, self.now, skills=skills, capacity=capacity, available=True))

    @rule(key=st.sampled_from(KEYS), last_agent=st.sampled_from((None, *AGENT_IDS)))
    def join(self, key: QueueKey, last_agent: str | None) -> None:
        customer_id = f"c{self.next_customer}"
        self.next_customer += 1
        self.customers[customer_id] = key
        self.last_agents[customer_id] = last_agent
        self.apply(self.mm.enqueue(customer_id, key, self.now, last_agent=last_agent))

    @rule(data=st.data(), accept=st.booleans())
    def answer(self, data, accept: bool) -> None:
        if not self.offers:
            return
        offer_id = data.draw(st.sampled_from(sorted(self.offers)))
        agent_id = self.offers[offer_id][1]
        action = self.mm.accept if accept else self.mm.decline
        self.apply(action(offer_id, agent_id, self.now))

    @rule(data=st.data())
    def end_call(self, data) -> None:
        if self.calls:
            customer_id = data.draw(st.sampled_from(sorted(self.calls)))
            self.apply(self.mm.end_call(customer_id, self.now))

    @rule(data=st.data(), drop=st.booleans())
    def leave_or_drop(self, data, drop: bool) -> None:
        queued = sorted(c for c in self.customers if c not in self.calls)
        if not queued:
            return
        customer_id = data.draw(st.sampled_from(queued))
        if drop:
            self.apply(self.mm.suspend(customer_id, self.now))
            self.apply(self.mm.resume(customer_id, self.now))
        else:
            self.apply(self.mm.leave(customer_id, self.now))
            del self.customers[customer_id]

    @rule(seconds=st.sampled_from([0.5, OFFER_TIMEOUT + 1, COOLOFF + 1]))
    def wait(self, seconds: float) -> None:
        self.advance(seconds)

    # ------------------------------------------------------------- invariants

    @invariant()
    def budget_never_overspent(self) -> None:
        assert self.left is None or self.left >= 0, (self.limit, self.left)

    def takers(self, customer_id: str) -> list[str]:
        """Free agents who may take this customer now."""
        key = self.customers[customer_id]
        states = self.mm.agent_states()
        return [
            a
            for a, skills in self.agents.items()
            if states.get(a) == "available"
            and (key.skill == GENERAL or key.skill in skills)
            and self.cooloff.get((customer_id, a), -1.0) <= self.now
        ]

    @invariant()
    def nobody_waits_beside_a_free_agent_while_the_budget_has_room(self) -> None:
        if self.left == 0:
            return
        states = self.mm.agent_states()
        for customer_id in self.customers:
            state = self.mm.customer_state(customer_id)
            if state is CustomerState.WAITING:
                assert not self.takers(customer_id), (customer_id, self.left, states)
            elif state is CustomerState.WAITING_FOR_AGENT:  # held for their last agent: not free
                agent_id = self.last_agents[customer_id]
                assert states.get(agent_id) != "available", (customer_id, agent_id, self.left)

    @invariant()
    def capacity_is_said_only_under_a_limit(self) -> None:
        statuses = self.mm.statuses(self.now)
        if self.left is None:
            assert not any(s.at_capacity for s in statuses.values())
            return
        if self.left == 0:
            waiting = [c for c, s in statuses.items() if s.state is CustomerState.WAITING]
            first = min(waiting, key=lambda c: int(c[1:]), default=None)  # earliest place
            if (
                first is not None
                and self.takers(first)
                and not any(
                    self.mm.customer_state(c) in (CustomerState.CHOOSING, CustomerState.WAITING_FOR_AGENT)
                    for c in self.customers
                )
            ):
                assert statuses[first].at_capacity, statuses[first]

    @invariant()
    def the_line_the_machine_turns_over_is_never_stale(self) -> None:
        """Everyone's place, as the CPU estimate counts them (cached between changes)."""
        view = self.mm._capacity_view()
        if view is None:
            return
        queued = (CustomerState.WAITING, CustomerState.CHOOSING, CustomerState.WAITING_FOR_AGENT)
        competing = [c for c in self.customers if self.mm.customer_state(c) in queued]
        assert len(view[0]) == len(competing) and view[0] == sorted(view[0])

    def teardown(self) -> None:
        # Lifted limit, every agent available, every offer accepted, time past every deadline:
        # everyone is served.
        self.set_limit(None)
        for _ in range(200):
            for agent_id in self.agents:  # missed offers set agents away: they come back
                self.apply(self.mm.set_available(agent_id, True, self.now))
            if self.offers:
                offer_id, (_, agent_id) = min(self.offers.items())
                self.apply(self.mm.accept(offer_id, agent_id, self.now))
            elif self.calls:
                self.apply(self.mm.end_call(min(self.calls), self.now))
            elif not self.customers:
                return
            else:  # cool-offs and affinity windows to run out
                self.advance(COOLOFF + 1)
        tech_only = [c for c, k in self.customers.items() if k.skill == "tech"]
        assert set(self.customers) <= set(tech_only) and not any(s for s in self.agents.values()), (
            "customers left unserved although an agent could take them"
        )


AdmissionMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_admission_machine = AdmissionMachine.TestCase
