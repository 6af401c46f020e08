"""What moved in the queues since they were last reported: compact, rendered by whoever sends. Pure.

After a change, most customers' positions and waits are what they were: a customer joining at
the back moves nobody else, and the head leaving moves everyone behind them by one place. A
:class:`LineMove` names one queue's line from the first index that may have moved, with what a
waiting customer's status is made of (index, seats, handle time), so the statuses are made one
by one as they are sent, not all before the first one goes.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass

from telepresence.routing.estimate import expected_wait
from telepresence.routing.queues import QueueKey
from telepresence.routing.records import CustomerState, CustomerStatus

CapacityView = tuple[list[int], int, int]  # competing places (sorted), calls held, admits left


def with_capacity(
    status: CustomerStatus, view: CapacityView | None, place: int, mean: float
) -> CustomerStatus:
    """A status with the CPU budget in it: a call frees CPU as it ends, like a seat, whatever
    the queue. The wait is the longer of the agents' and the machine's; the customer is held
    back by capacity when the machine's is the longer (an agent would be there sooner).
    ``place`` and ``mean``: the customer's, and their queue's handle time."""
    agent_wait = status.expected_wait_s
    if view is None or agent_wait is None or status.state in (CustomerState.OFFERED, CustomerState.IN_CALL):
        return status  # no limit; or nobody to serve them: agents, not CPU, are what is missing
    places, calls, admits = view
    cpu_wait = expected_wait(bisect.bisect_left(places, place), admits, calls + admits, mean)
    at_capacity = cpu_wait is None or cpu_wait > agent_wait
    wait = None if cpu_wait is None else max(agent_wait, cpu_wait)
    return CustomerStatus(status.customer_id, status.state, status.position, wait, at_capacity)


@dataclass(frozen=True)
class LineMove:
    """The WAITING customers of one queue from index ``start`` on: their statuses may have moved.

    ``line`` is that part of the queue, (place, customer id) in order; ``free`` and ``seats``
    the queue's free and all seats, ``mean_handle_s`` its handle time; ``capacity`` the CPU
    budget's view when admission limits offers (None: no limit).
    """

    key: QueueKey
    start: int
    line: list[tuple[int, str]]
    free: int
    seats: int
    mean_handle_s: float
    capacity: CapacityView | None = None

    def __len__(self) -> int:
        return len(self.line)

    def statuses(self) -> Iterator[CustomerStatus]:
        free, seats, mean, view = self.free, self.seats, self.mean_handle_s, self.capacity
        waiting = CustomerState.WAITING
        for ahead, (place, customer_id) in enumerate(self.line, self.start):
            status = CustomerStatus(customer_id, waiting, ahead + 1, expected_wait(ahead, free, seats, mean))
            yield status if view is None else with_capacity(status, view, place, mean)


@dataclass(frozen=True)
class StatusChanges:
    """Every customer whose status may have changed since the last report (a superset: a
    customer named here may be told what they were told before; nobody left out has moved).

    ``lines``: waiting customers, by queue; ``others``: the customers of the changed queues
    who are not in a line (held for an agent, suspended, offered), already made. Customers in
    a call are not named: what they are told is their call's.
    """

    lines: list[LineMove]
    others: dict[str, CustomerStatus]

    def __iter__(self) -> Iterator[CustomerStatus]:
        for line in self.lines:
            yield from line.statuses()
        yield from self.others.values()

    def __len__(self) -> int:
        return sum(len(line) for line in self.lines) + len(self.others)
