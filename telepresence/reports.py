"""What the switchboard tells about the queues: each waiting customer's place, /metrics, /api/status.

:meth:`Reports.publish` runs after every change and pushes a customer's position and
expected wait only when it changed, reading only the customers the matchmaker says may have
moved (:meth:`~telepresence.routing.Matchmaker.take_status_changes`); the gauges and the
status report are computed when they are read. A waiting customer's status is
:func:`waiting_status` of their place and their queue's seats and handle time, which is all
a centre's door needs to make it again (:attr:`Reports.line_sink`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from telepresence.admission import Admission
from telepresence.directory import Directory
from telepresence.media_control import MediaControl
from telepresence.metrics import Metrics
from telepresence.routing import CustomerState, CustomerStatus, LineMove, Matchmaker
from telepresence.routing.estimate import expected_wait
from telepresence.sessions import Connection, CustomerSession, Message

# A queue's (free seats, all seats, mean handle time): with a customer's index in the line,
# everything their status is made of (no CPU budget: see LineMove.capacity).
LineParams = tuple[int, int, float]
# Takes a line's changed statuses as sockets and their indexes in the line (two flat lists:
# no object made per socket) instead of sending each message.
LineSink = Callable[[LineParams, list[Connection], list[int]], None]


def round_wait(seconds: float | None) -> float | None:
    """A wait as clients are told it: whole seconds, or None for "unknown"."""
    return None if seconds is None else round(seconds)


def waiting_status(ahead: int, free: int, seats: int, mean_handle_s: float) -> dict[str, Any]:
    """The ``queue_status`` of a customer waiting in line with ``ahead`` customers before them
    (no CPU budget), as :meth:`Reports.publish` sends it: key for key, value for value."""
    wait = expected_wait(ahead, free, seats, mean_handle_s)
    return {
        "type": "queue_status",
        "state": "waiting",
        "position": ahead + 1,
        "expected_wait_s": None if wait is None else round(wait),
        "capacity": False,
    }


# json.dumps of waiting_status(), key for key and space for space, made without the dict.
_WAITING_TEXT = (
    '{"type": "queue_status", "state": "waiting", "position": %d, "expected_wait_s": %s, "capacity": false}'
)


def waiting_status_text(ahead: int, free: int, seats: int, mean_handle_s: float) -> str:
    """``json.dumps(waiting_status(...))``, made straight as text: a centre's door makes one per
    socket of a moved line (thousands when the head of a long queue leaves), and the dict and
    its encoding cost 2.2-3.3 us a socket against 0.5 (measured here)."""
    wait = expected_wait(ahead, free, seats, mean_handle_s)
    return _WAITING_TEXT % (ahead + 1, "null" if wait is None else round(wait))


@dataclass(kw_only=True, eq=False)  # a part of the switchboard, equal only to itself
class Reports:
    """Queue statuses pushed to customers; gauges and aggregates for operations."""

    metrics: Metrics
    matchmaker: Matchmaker
    directory: Directory
    media: MediaControl
    admission: Admission
    clock: Callable[[], float]
    # Customers to tell their status at the next publish even if their queue did not change.
    status_owed: set[str] = field(default_factory=set, init=False)
    # A centre's leader sets this: a line's changed statuses then travel as (socket, index)
    # with the line's parameters, and each door makes its own sockets' messages
    # (telepresence/centre/remote.py); None: each message is sent as made.
    line_sink: LineSink | None = field(default=None, init=False)

    def owe_status(self, customer_id: str) -> None:
        """Tell this customer their status at the next publish (a tab that rejoined)."""
        self.status_owed.add(customer_id)

    def publish(self) -> None:
        """Push each customer's position and wait if it changed.

        Only the customers the matchmaker names as moved are read (a join at the back names
        one, the head leaving everyone behind them), and the customers owed a fresh status
        (a tab that rejoined), so a message that moves nobody costs next to nothing however
        long the queues are; each status is made as it is sent. (Gauges: when /metrics is read.)
        """
        now = self.clock()
        changes = self.matchmaker.take_status_changes(now)
        owed, self.status_owed = self.status_owed, set()
        for customer_id in owed:
            if self.matchmaker.customer_state(customer_id) is not None:
                self._push(self.matchmaker.status(customer_id, now))
        for line in changes.lines:
            if line.capacity is None:
                self._push_line(line)
            else:  # a CPU budget: every wait also depends on the whole centre's places
                for status in line.statuses():
                    self._push(status)
        for status in changes.others.values():
            self._push(status)

    def _push(self, status: CustomerStatus) -> None:
        session = self.directory.customers.get(status.customer_id)
        if session is None or session.conn is None or status.state is CustomerState.IN_CALL:
            return
        message = {
            "type": "queue_status",
            "state": status.state.value,
            "position": status.position,
            "expected_wait_s": round_wait(status.expected_wait_s),
            "capacity": status.at_capacity,
        }
        if status.at_capacity and not (session.last_status or {}).get("capacity"):
            self.metrics.admission_refusals.inc()
        if message != session.last_status:
            self._told(session, message)
            session.conn.send(message)

    def _push_line(self, line: LineMove) -> None:
        """:meth:`_push` of every status of a line with no CPU budget, made straight from the
        line (thousands when the head of a long queue leaves: this loop is the leader's cost
        per socket on a centre, so it makes only the message each customer is compared by)."""
        customers = self.directory.customers
        params: LineParams = (line.free, line.seats, line.mean_handle_s)
        sink = self.line_sink
        # Flat lists, not a (socket, index) pair each: thousands of pairs holding a socket stay
        # tracked by the garbage collector and, alive through its young collections, were
        # promoted into the old generation: a full collection every ~30 leaves (measured).
        conns: list[Connection] = []
        places: list[int] = []
        for ahead, (_, customer_id) in enumerate(line.line, line.start):
            session = customers.get(customer_id)
            if session is None or session.conn is None:
                continue
            message = waiting_status(ahead, *params)  # a dict of plain values: never tracked
            if message != session.last_status:
                self._told(session, message)
                if sink is None:
                    session.conn.send(message)
                else:
                    conns.append(session.conn)
                    places.append(ahead)
        if conns and sink is not None:
            sink(params, conns, places)

    def _told(self, session: CustomerSession, message: Message) -> None:
        session.last_status = message
        if session.lobby is not None:
            self.media.announce(session.lobby, message["position"], message["expected_wait_s"])

    def refresh_gauges(self) -> None:
        """Queue, agent and admission gauges for /metrics."""
        now = self.clock()
        # Only the queues that exist now: one that was forgotten must not linger in /metrics.
        for gauge in (self.metrics.waiting, self.metrics.longest_wait, self.metrics.service_level):
            gauge.clear()
        for stats in self.matchmaker.queue_stats(now):
            label = str(stats.key)
            self.metrics.waiting.labels(label).set(stats.waiting)
            self.metrics.longest_wait.labels(label).set(stats.longest_wait_s)
            if stats.service_level is not None:
                self.metrics.service_level.labels(label).set(stats.service_level)
        for state, count in self.directory.agent_counts().items():
            self.metrics.agents.labels(state).set(count)
        self.metrics.admission_waiting.set(self.matchmaker.admission_waiting(now))

    def status_report(self) -> Message:
        """Aggregates for /api/status: no customer's name or chat."""
        now = self.clock()
        queues = [
            {
                "queue": str(s.key),
                "waiting": s.waiting,
                "longest_wait_s": round(s.longest_wait_s, 1),
                "answered": s.answered,
                "abandoned": s.abandoned,
                "service_level": s.service_level,
            }
            for s in self.matchmaker.queue_stats(now)
        ]
        agents = self.directory.agent_counts()
        live = len(self.directory.active_calls())
        admission = self.admission.report(waiting=self.matchmaker.admission_waiting(now))
        return {"queues": queues, "agents": agents, "calls": {"active": live}, "admission": admission}
