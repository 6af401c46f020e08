"""What the Matchmaker knows, and the lines its customers stand in. Pure: no I/O, no clock.

Customers, agents and pending offers by id; the WAITING customers of each queue and the
customers held for one agent, each line sorted by place; which queues changed. The
bookkeeping here keeps those lines, the places cache and the change marks in step with
the customers' states; :mod:`~telepresence.routing.offers` and
:mod:`~telepresence.routing.status` build on it, and :class:`~telepresence.routing.matchmaker.Matchmaker`
on both.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from telepresence.routing.errors import RoutingError
from telepresence.routing.estimate import HandleTimes
from telepresence.routing.queues import QueueKey, QueueRegister
from telepresence.routing.records import HELD, Agent, Customer, CustomerState, Offer


class MatchState:
    """The Matchmaker's state and its bookkeeping (no policy of its own)."""

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
        self._customers: dict[str, Customer] = {}
        self._agents: dict[str, Agent] = {}
        self._offers: dict[str, Offer] = {}
        # WAITING customers only, per queue, as sorted (place, customer id) pairs.
        self._queues: dict[QueueKey, list[tuple[int, str]]] = {}
        # Returning customers held for (or choosing) their last agent, per agent, sorted.
        self._preferring: dict[str, list[tuple[int, str]]] = {}
        # Customers with something for tick() to expire besides offers.
        self._timed: set[str] = set()
        self.queues = QueueRegister(skills, languages)
        # Queues whose customers' statuses may have changed since take_changed_queues().
        self._changed: set[QueueKey] = set()
        # For take_status_changes(): per queue, the first index of its line that moved since,
        # and the (free seats, seats, handle time) its waits were last reported with.
        self._moved: dict[QueueKey, int] = {}
        self._told_params: dict[QueueKey, tuple[int, int, float]] = {}
        # SUSPENDED customers per queue: in no line, yet their position follows their queue's.
        self._suspended: dict[QueueKey, set[str]] = {}
        # (free, all) seats per queue as take_status_changes() counts them: kept up to date from
        # the agents touched since, each agent's share as it was counted (agent, free, all).
        self._seat_counts: dict[QueueKey, list[int]] = {}
        self._counted: dict[str, tuple[Agent, int, int]] = {}
        self._touched_agents: set[str] = set()
        self._next_place = 0
        self._next_offer = 0
        # How many more offers the machine's CPU budget allows now; None: no limit (admission.py).
        self._admits: int | None = None
        self._places: list[int] | None = None  # everyone's place in line, sorted; None: to redo

    def __setstate__(self, state: dict[str, object]) -> None:
        """A state pickled before the incremental status bookkeeping (an older leader's
        snapshot) gets it empty: the first report after is a full one."""
        self.__dict__.update(state)
        for name in ("_moved", "_told_params", "_seat_counts"):
            self.__dict__.setdefault(name, {})
        if "_counted" not in state:
            self._touched_agents = set(self._agents)
            self._counted = {}
        if "_suspended" not in state:
            self._suspended = {}
            for customer in self._customers.values():
                if customer.state is CustomerState.SUSPENDED:
                    self._suspended.setdefault(customer.key, set()).add(customer.id)

    def _customer(self, customer_id: str) -> Customer:
        try:
            return self._customers[customer_id]
        except KeyError:
            raise RoutingError(f"unknown customer {customer_id!r}") from None

    def _agent(self, agent_id: str) -> Agent:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise RoutingError(f"unknown agent {agent_id!r}") from None

    def _touch_agent(self, agent: Agent) -> None:
        """An agent's seats or availability changed: so did the waits in every queue they serve."""
        self._touched_agents.add(agent.id)
        self._changed.update(key for key in self.queues if agent.serves(key))

    def _forget_customer(self, customer: Customer) -> None:
        """The customer is gone; so is their queue if nobody is left in it and the centre never named it."""
        del self._customers[customer.id]
        self._unsuspend(customer)
        if self.queues.gone(customer.key):
            self._queues.pop(customer.key, None)
            self._seat_counts.pop(customer.key, None)
            self.handle_times.forget(customer.key)

    def _insert(self, customer: Customer) -> None:
        self._unsuspend(customer)
        customer.state = CustomerState.WAITING
        self._places = None
        queue = self._queues.setdefault(customer.key, [])
        entry = (customer.place, customer.id)
        index = bisect.bisect_left(queue, entry)
        queue.insert(index, entry)
        self._line_moved(customer.key, index)

    def _remove(self, customer: Customer) -> None:
        self._places = None
        queue = self._queues[customer.key]
        index = bisect.bisect_left(queue, (customer.place, customer.id))
        assert queue[index][1] == customer.id
        del queue[index]
        self._line_moved(customer.key, index)

    def _line_moved(self, key: QueueKey, index: int) -> None:
        """Everyone from ``index`` on in ``key``'s line has a new index (the ones before do not)."""
        self._changed.add(key)
        self._moved[key] = min(index, self._moved.get(key, index))

    def _suspend(self, customer: Customer) -> None:
        customer.state = CustomerState.SUSPENDED
        self._suspended.setdefault(customer.key, set()).add(customer.id)

    def _unsuspend(self, customer: Customer) -> None:
        suspended = self._suspended.get(customer.key)
        if suspended is not None and customer.id in suspended:
            suspended.discard(customer.id)
            if not suspended:
                del self._suspended[customer.key]

    def _hold(self, customer: Customer, state: CustomerState) -> None:
        self._unsuspend(customer)
        customer.state = state
        self._places = None
        self._timed.add(customer.id)
        held = self._preferring.setdefault(customer.last_agent or "", [])
        bisect.insort(held, (customer.place, customer.id))
        self._touch_held(customer)

    def _unhold(self, customer: Customer) -> None:
        self._places = None
        held = self._preferring[customer.last_agent or ""]
        held.remove((customer.place, customer.id))
        self._touch_held(customer)
        if not customer.declined_by:
            self._timed.discard(customer.id)

    def _touch_held(self, customer: Customer) -> None:
        """The line of customers held for one agent changed: their waits may have moved."""
        self._changed.add(customer.key)
        agent = self._agents.get(customer.last_agent or "")
        if agent is not None:
            self._touch_agent(agent)

    def _stop_holding(self, customer: Customer) -> None:
        """A held (or suspended) customer goes back to their place in the queue."""
        if customer.state in HELD:
            self._unhold(customer)
        customer.prefer_until = None
        self._insert(customer)

    def _offers_of(self, agent: Agent) -> list[Offer]:
        """An agent's pending offers, earliest customer place first."""
        offered = [self._customers[c] for c in agent.customers]
        return [
            self._offers[c.offer_id]  # type: ignore[index]
            for c in sorted(offered, key=lambda c: c.place)
            if c.state is CustomerState.OFFERED
        ]
