"""Prometheus metrics, one registry per app (so tests can run several apps side by side).

Named like the contact-centre tools people already run: queue depth and longest
wait per queue, agents by state, offers by outcome, time to answer, abandonment,
calls by outcome.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from telepresence.protocol import BROWSER_STATS

TIME_TO_ANSWER_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
# Label values come from fixed sets: a label per client-chosen string would grow /metrics forever.
CALL_STAGES = frozenset(
    (
        "slot_wait",
        "compose",
        "encode",
        *(f"{role}_{name}" for role in ("agent", "customer") for name in BROWSER_STATS),
    )
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.waiting = Gauge("telepresence_queue_waiting", "Customers waiting", ["queue"], registry=r)
        self.longest_wait = Gauge(
            "telepresence_queue_longest_wait_seconds", "Longest current wait", ["queue"], registry=r
        )
        self.service_level = Gauge(
            "telepresence_queue_service_level",
            "Share of answered customers answered within the target time",
            ["queue"],
            registry=r,
        )
        self.agents = Gauge("telepresence_agents", "Logged-in agents by state", ["state"], registry=r)
        self.offers = Counter(
            "telepresence_offers", "Offers made to agents, by outcome", ["outcome"], registry=r
        )
        self.time_to_answer = Histogram(
            "telepresence_time_to_answer_seconds",
            "From joining the queue to an agent accepting",
            buckets=TIME_TO_ANSWER_BUCKETS,
            registry=r,
        )
        self.abandoned = Counter(
            "telepresence_abandoned", "Customers who left before being answered", ["queue"], registry=r
        )
        self.calls = Counter("telepresence_calls", "Finished calls by outcome", ["outcome"], registry=r)
        self.call_stage_p95 = Histogram(
            "telepresence_call_stage_p95_milliseconds",
            "Each finished call's p95 per frame-path stage (compose, slot_wait, browser figures...)",
            ["stage"],
            buckets=(0.5, 1, 2, 3, 5, 8, 13, 20, 33, 50, 100, 200, 500),
            registry=r,
        )
        self.connections = Gauge("telepresence_websockets", "Open signalling sockets", registry=r)
        self.protocol_errors = Counter(
            "telepresence_protocol_errors", "Client messages refused, by code", ["code"], registry=r
        )
        # Admission control (telepresence/admission.py).
        self.cpu_busy = Gauge(
            "telepresence_cpu_busy_pct", "Machine CPU busy, % of all cores, smoothed", registry=r
        )
        self.admission_open = Gauge(
            "telepresence_admission_open", "1 while new calls may start, 0 at capacity", registry=r
        )
        self.admission_waiting = Gauge(
            "telepresence_admission_waiting", "Customers waiting for CPU capacity", registry=r
        )
        self.admission_refusals = Counter(
            "telepresence_admission_refusals",
            "Times a waiting customer was told the centre is at capacity",
            registry=r,
        )
        self.call_cpu = Gauge(
            "telepresence_call_cpu_pct", "Expected CPU of one more call, % of one core", registry=r
        )
        self.shed_level = Gauge(
            "telepresence_shed_level", "Shedding step in force (0: full quality)", registry=r
        )
        # Media worker processes (telepresence/worker_pool.py) and each live call's CPU
        # (telepresence/room_cpu.py). Labels: worker names (fixed by media_workers) and the
        # ids of live calls only (an ended call's series is removed at the next read).
        self.worker_cpu = Gauge(
            "telepresence_media_worker_cpu_pct",
            "Each media process's own CPU, % of one core ('control' when rooms run in-process)",
            ["worker"],
            registry=r,
        )
        self.worker_rooms = Gauge(
            "telepresence_media_worker_rooms",
            "Rooms (calls' media) each media process holds",
            ["worker"],
            registry=r,
        )
        self.worker_restarts = Counter(
            "telepresence_media_worker_restarts",
            "Media worker processes that died and were replaced",
            registry=r,
        )
        self.live_call_cpu = Gauge(
            "telepresence_live_call_cpu_pct",
            "Each live call's share of its media process's CPU, % of one core",
            ["call", "worker"],
            registry=r,
        )

    def observe_call_stage(self, stage: str, p95_ms: float) -> None:
        """One finished call's p95 for ``stage``; stages outside :data:`CALL_STAGES` are not kept."""
        if stage in CALL_STAGES:
            self.call_stage_p95.labels(stage).observe(p95_ms)

    def render(self) -> bytes:
        return generate_latest(self.registry)


# What the whole centre counts (the leader's switchboard), as opposed to what one process
# counts (its sockets, rooms, workers, CPU): on a centre of many processes every process
# serves the leader's figures for these (telepresence/centre/leader.py).
CENTRE_FAMILIES = frozenset(
    {
        "telepresence_queue_waiting",
        "telepresence_queue_longest_wait_seconds",
        "telepresence_queue_service_level",
        "telepresence_agents",
        "telepresence_offers",
        "telepresence_time_to_answer_seconds",
        "telepresence_abandoned",
        "telepresence_calls",
        "telepresence_admission_waiting",
        "telepresence_admission_refusals",
    }
)


def select_families(text: bytes, families: frozenset[str], *, keep: bool) -> bytes:
    """The blocks of a Prometheus text exposition that belong (``keep``) or do not belong to
    ``families`` (a counter's ``_total`` and ``_created`` blocks go with its family)."""
    out: list[bytes] = []
    keeping = True
    for line in text.splitlines(keepends=True):
        if line.startswith(b"# HELP "):
            name = line.split(b" ", 3)[2].decode()
            ours = any(name == f or name.startswith(f + "_") for f in families)
            keeping = ours == keep
        if keeping:
            out.append(line)
    return b"".join(out)
