"""What the Matchmaker tells: positions, expected waits, queue stats. Pure: reads, never moves anyone.

A customer's wait is the agents' (their seats' turnover, :func:`~telepresence.routing.estimate.expected_wait`)
and, under a CPU admission limit, the machine's: a call frees CPU as it ends, like a seat,
whatever the queue. The longer of the two is the customer's wait.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Collection, Iterator

from telepresence.routing.changes import CapacityView, LineMove, StatusChanges, with_capacity
from telepresence.routing.estimate import expected_wait
from telepresence.routing.queues import QueueKey
from telepresence.routing.records import (
    SEATED,
    Agent,
    AgentState,
    Customer,
    CustomerState,
    CustomerStatus,
    QueueStats,
)
from telepresence.routing.state import MatchState


class Statuses(MatchState):
    """The Matchmaker's read side: where each customer stands, and how the queues do."""

    def status(self, customer_id: str, now: float) -> CustomerStatus:
        """Where one customer stands: position in their queue and expected wait."""
        return self._capacity_status(self._queue_status(customer_id, now), self._capacity_view())

    def _queue_status(
        self, customer_id: str, now: float, seats: dict[QueueKey, tuple[int, int]] | None = None
    ) -> CustomerStatus:
        """:meth:`status` as the agents alone make it (the CPU budget is :meth:`_capacity_status`'s).

        ``seats``: the (free, all) seats of queues already counted (:meth:`_seats_of`)."""
        customer = self._customer(customer_id)
        if customer.state in (CustomerState.OFFERED, CustomerState.IN_CALL):
            return CustomerStatus(customer_id, customer.state, None, 0.0)
        queue = self._queues.get(customer.key, [])
        ahead = bisect.bisect_left(queue, (customer.place, customer.id))
        if customer.state is CustomerState.WAITING_FOR_AGENT:
            agent = self._agents.get(customer.last_agent or "")
            wait = self._agent_wait(agent, customer) if agent else None
            return CustomerStatus(customer_id, customer.state, ahead + 1, wait)
        counted = seats.get(customer.key) if seats is not None else None
        return CustomerStatus(
            customer_id, customer.state, ahead + 1, self._queue_wait(customer, ahead, counted)
        )

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
        others = self._customers if keys is None else self._outside_lines(keys)
        for customer_id in others:
            if self._customers[customer_id].state is not CustomerState.WAITING:
                result[customer_id] = self._capacity_status(self._queue_status(customer_id, now), view)
        return result

    def take_status_changes(self, now: float) -> StatusChanges:
        """Every customer whose status may have changed since the last call, compactly; clears
        the changes (as :meth:`take_changed_queues`, which it includes, does).

        Incremental: a queue's line is named from the first index that moved, unless its seats
        or handle time moved since they were last reported (or a CPU budget limits offers:
        then everyone's wait may move), so a join at the back costs one status, not the queue's.
        The statuses of the lines are made as :class:`StatusChanges` is read.
        """
        changed, self._changed = self._changed, set()
        moved, self._moved = self._moved, {}
        if not changed:
            return StatusChanges([], {})
        view = self._capacity_view()
        lines: list[LineMove] = []
        seats_of = {key: self._counted_seats(key) for key in changed}
        for key in changed:
            queue = self._queues.get(key)
            if not queue:
                self._told_params.pop(key, None)
                continue
            free, seats = seats_of[key]
            params = (free, seats, self.handle_times.mean(key))
            start = moved.get(key, len(queue))
            if view is not None or self._told_params.get(key) != params:
                start = 0
            self._told_params[key] = params
            if start < len(queue):
                lines.append(LineMove(key, start, queue[start:], *params, capacity=view))
        others = {
            customer_id: self._capacity_status(self._queue_status(customer_id, now, seats_of), view)
            for customer_id in self._outside_lines(changed, in_call=False)
        }
        return StatusChanges(lines, others)

    def _outside_lines(self, keys: Collection[QueueKey], *, in_call: bool = True) -> Iterator[str]:
        """The customers of ``keys`` who are in no queue's line (held, suspended, offered and,
        with ``in_call``, in a call), found without walking every customer: each of those
        states has its own index."""
        if not keys:
            return
        for key in keys:
            yield from self._suspended.get(key, ())
        customers = self._customers
        for line in self._preferring.values():
            for _, customer_id in line:
                if customers[customer_id].key in keys:
                    yield customer_id
        if not in_call:
            for offer in self._offers.values():
                if customers[offer.customer_id].key in keys:
                    yield offer.customer_id
            return
        for agent in self._agents.values():  # offered or in a call: in their agent's seats
            for customer_id in agent.customers:
                if customers[customer_id].key in keys:
                    yield customer_id

    def take_changed_queues(self) -> set[QueueKey]:
        """The queues whose customers' statuses may have changed since the last call; clears them.

        A queue changes when a customer joins, leaves or changes state in it, when its
        handle-time average moves, and when an agent who serves it changes availability
        or seats (which moves the expected waits).
        """
        changed, self._changed = self._changed, set()
        for key in changed:  # the caller reports these in full: take_status_changes starts afresh
            self._moved.pop(key, None)
            self._told_params.pop(key, None)
        return changed

    def queue_stats(self, now: float) -> list[QueueStats]:
        """Per queue: waiting count, longest wait, answered, in target, abandoned.

        The waiting are a queue's line, its held and its suspended customers, counted from
        their own indexes (/api/status and /metrics read this often). Places are given in
        joining order (``now`` never goes back), so a line's longest wait is its head's."""
        customers = self._customers
        outside: dict[QueueKey, list[Customer]] = {}
        held = (customer_id for line in self._preferring.values() for _, customer_id in line)
        suspended = (customer_id for members in self._suspended.values() for customer_id in members)
        for customer_id in itertools.chain(held, suspended):
            customer = customers[customer_id]
            outside.setdefault(customer.key, []).append(customer)
        stats = []
        for key in sorted(self.queues):
            line = self._queues.get(key) or []
            people = outside.get(key, [])
            joined = [customers[line[0][1]].joined_at] if line else []
            joined += [customer.joined_at for customer in people]
            counters = self.queues.counters(key)
            stats.append(
                QueueStats(
                    key,
                    len(line) + len(people),
                    max((now - at for at in joined), default=0.0),
                    counters.answered,
                    counters.answered_in_target,
                    counters.abandoned,
                )
            )
        return stats

    def admission_waiting(self, now: float) -> int:
        """Customers the CPU budget holds back now (an agent would take them sooner)."""
        if self._admits is None:
            return 0
        return sum(1 for status in self.statuses(now).values() if status.at_capacity)

    def _capacity_view(self) -> CapacityView | None:
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
        view: CapacityView | None,
        place: int | None = None,
        mean: float | None = None,
    ) -> CustomerStatus:
        """A status with the CPU budget in it: a call frees CPU as it ends, like a seat, whatever
        the queue. The wait is the longer of the agents' and the machine's; the customer is held
        back by capacity when the machine's is the longer (an agent would be there sooner).
        ``place`` and ``mean`` (the customer's, and their queue's handle time) when known."""
        if view is None:
            return status
        if place is None or mean is None:
            customer = self._customers[status.customer_id]
            place, mean = customer.place, self.handle_times.mean(customer.key)
        return with_capacity(status, view, place, mean)

    def agent_states(self) -> dict[str, str]:
        """Each agent's state: ``available``, ``busy`` (no free seat), ``wrap_up`` or ``away``."""
        return {agent_id: self.agent_state(agent_id) for agent_id in self._agents}

    def agent_state(self, agent_id: str) -> str:
        """One agent's state, as :meth:`agent_states` reports it."""
        agent = self._agent(agent_id)
        if agent.state is not AgentState.AVAILABLE:
            return agent.state.value
        return "available" if agent.free_seats else "busy"

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

    def _slots(self, key: QueueKey) -> tuple[int, int]:
        """(free seats, all seats) of available agents serving ``key``."""
        free = total = 0
        for agent in self._agents.values():
            if agent.state in SEATED and agent.serves(key):
                total += agent.capacity
                free += agent.free_seats
        return free, total

    def _counted_seats(self, key: QueueKey) -> tuple[int, int]:
        """:meth:`_slots` of ``key`` without walking every agent: the counts are moved by each
        agent touched since the last count (every change of an agent's seats or state touches
        it, within the same command), and a queue not counted yet is counted once in full."""
        for agent_id in self._touched_agents:
            # The share as counted goes, then the share now comes: the agent may have been
            # removed, or removed and logged in again with other skills, since.
            counted = self._counted.pop(agent_id, None)
            if counted is not None:
                self._move_seats(counted[0], -counted[1], -counted[2])
            agent = self._agents.get(agent_id)
            if agent is not None:
                free, total = agent.free_seats, agent.capacity if agent.state in SEATED else 0
                self._counted[agent_id] = (agent, free, total)
                self._move_seats(agent, free, total)
        self._touched_agents.clear()
        count = self._seat_counts.get(key)
        if count is None:
            count = self._seat_counts[key] = list(self._slots(key))
        return count[0], count[1]

    def _move_seats(self, agent: Agent, free: int, total: int) -> None:
        if free or total:
            for queue, count in self._seat_counts.items():
                if agent.serves(queue):
                    count[0] += free
                    count[1] += total

    def _queue_wait(
        self, customer: Customer, ahead: int | None = None, seats: tuple[int, int] | None = None
    ) -> float | None:
        if ahead is None:
            queue = self._queues.get(customer.key, [])
            ahead = bisect.bisect_left(queue, (customer.place, customer.id))
        free, total = seats if seats is not None else self._slots(customer.key)
        return expected_wait(ahead, free, total, self.handle_times.mean(customer.key))

    def _agent_wait(self, agent: Agent, customer: Customer) -> float | None:
        if agent.state not in SEATED:
            return None
        ahead = bisect.bisect_left(self._preferring.get(agent.id, []), (customer.place, customer.id))
        return expected_wait(ahead, agent.free_seats, agent.capacity, self.handle_times.mean(customer.key))
