"""What the switchboard tells about the queues: each waiting customer's place, /metrics, /api/status.

:meth:`Reports.publish` runs after every change and pushes a customer's position and
expected wait only when it changed, reading only the customers the matchmaker says may have
moved (:meth:`~telepresence.routing.Matchmaker.take_status_changes`); the gauges and the
status report are computed when they are read.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from telepresence.admission import Admission
from telepresence.directory import Directory
from telepresence.media_control import MediaControl
from telepresence.metrics import Metrics
from telepresence.routing import CustomerState, Matchmaker
from telepresence.sessions import Message


def round_wait(seconds: float | None) -> float | None:
    """A wait as clients are told it: whole seconds, or None for "unknown"."""
    return None if seconds is None else round(seconds)


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
        owed_statuses = [
            self.matchmaker.status(customer_id, now)
            for customer_id in owed
            if self.matchmaker.customer_state(customer_id) is not None
        ]
        for status in itertools.chain(owed_statuses, changes):
            session = self.directory.customers.get(status.customer_id)
            if session is None or session.conn is None or status.state is CustomerState.IN_CALL:
                continue
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
                session.last_status = message
                session.conn.send(message)
                if session.lobby is not None:
                    self.media.announce(session.lobby, status.position, message["expected_wait_s"])

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
