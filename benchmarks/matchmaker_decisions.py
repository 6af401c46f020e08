"""Suite "matchmaker", part (a): pairing decisions at contact-centre scale. In process, no I/O.

See :mod:`benchmarks.matchmaker` for what is timed and the targets.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from benchmarks.progress import progress
from telepresence.routing import CustomerState, HandleTimes, Matchmaker, OfferMade, QueueKey

SKILLS = ("billing", "tech", "sales", "returns", "accounts")
LANGUAGES = ("en", "fr", "de", "es")
QUEUES = [QueueKey()] + [QueueKey(s, lang) for s in SKILLS for lang in LANGUAGES]
WAITING = 10_000
AGENTS = 500


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class _Floor:
    """A busy contact centre around one Matchmaker, with a fake clock."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.now = 0.0
        self.mm = Matchmaker(
            offer_timeout_s=20,
            affinity_window_s=300,
            decline_cooloff_s=60,
            handle_times=HandleTimes(prior_s=240),
        )
        self.next_id = 0
        self.in_call: dict[str, str] = {}  # customer -> agent
        self.offers: dict[str, str] = {}  # offer id -> agent
        self.agents = [f"agent-{i}" for i in range(AGENTS)]
        self.change_times: list[float] = []  # the decision, the changes, the first status made
        self.named_times: list[float] = []  # every status the changes name, made
        self.named: list[int] = []  # how many statuses each decision's changes name
        for agent_id in self.agents:
            self.mm.add_agent(
                agent_id,
                self.tick_clock(),
                skills=rng.sample(SKILLS, 2),
                languages=rng.sample(LANGUAGES, rng.choice((1, 2))),
                available=True,
            )
        # Fill every seat, then the queues: general traffic a fifth, the rest spread evenly.
        while len(self.in_call) < AGENTS or self.waiting() < WAITING:
            self.track(self.mm.enqueue(self.new_id(), self.random_key(), self.tick_clock()))
            self.accept_all()
        self.mm.take_status_changes(self.now)

    def tick_clock(self) -> float:
        self.now += 0.01
        return self.now

    def new_id(self) -> str:
        self.next_id += 1
        return f"cust-{self.next_id}"

    def random_key(self) -> QueueKey:
        return QueueKey() if self.rng.random() < 0.2 else self.rng.choice(QUEUES[1:])

    def waiting(self) -> int:
        return len(self.mm._customers) - len(self.in_call) - len(self.offers)  # noqa: SLF001 - sizes only

    def track(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, OfferMade):
                self.offers[event.offer_id] = event.agent_id

    def accept_all(self) -> None:
        for offer_id, agent_id in list(self.offers.items()):
            customer_id, _, _ = self.mm.offer(offer_id)  # type: ignore[misc]
            self.mm.accept(offer_id, agent_id, self.now)
            del self.offers[offer_id]
            self.in_call[customer_id] = agent_id

    def waiting_customer(self) -> str:
        while True:
            customer_id = f"cust-{self.rng.randint(1, self.next_id)}"
            if self.mm.customer_state(customer_id) is CustomerState.WAITING:
                return customer_id

    def refill(self) -> None:
        """Keep 10,000 waiting (untimed)."""
        while self.waiting() < WAITING:
            self.track(self.mm.enqueue(self.new_id(), self.random_key(), self.tick_clock()))

    def one_decision(self, kind: str) -> float:
        """Set up, then time exactly one matchmaker call of ``kind``; seconds. Also timed, into
        ``change_times``: the same call, then what the switchboard does before its first socket
        send (the status changes taken, the first status made); into ``named_times``: every
        status the changes name, made, after the call."""
        mm, now = self.mm, self.tick_clock()
        clock = time.perf_counter
        if kind == "enqueue":
            customer_id, key = self.new_id(), self.random_key()
            start = clock()
            events = mm.enqueue(customer_id, key, now)
        elif kind in ("enqueue_returning", "choose_any"):
            customer_id, agent_id = self.new_id(), self.rng.choice(self.agents)
            key = self.rng.choice([QueueKey()] + [k for k in QUEUES[1:] if mm._agents[agent_id].serves(k)])  # noqa: SLF001
            start = clock()
            events = mm.enqueue(customer_id, key, now, last_agent=agent_id)
            if kind == "choose_any":
                start = clock()
                events = mm.choose(customer_id, False, now)
        elif kind == "leave":
            customer_id = self.waiting_customer()
            start = clock()
            events = mm.leave(customer_id, now)
        elif kind in ("end_call", "accept", "decline", "timeout"):
            customer_id = self.rng.choice(list(self.in_call))
            agent_id = self.in_call.pop(customer_id)
            start = clock()
            events = mm.end_call(customer_id, now)  # the agent takes the next customer
            if kind != "end_call":
                (offer_id,) = [e.offer_id for e in events if isinstance(e, OfferMade)]
                if kind == "accept":
                    start = clock()
                    events = mm.accept(offer_id, agent_id, now)
                elif kind == "decline":
                    start = clock()
                    events = mm.decline(offer_id, agent_id, now)
                else:
                    now = self.now = self.now + mm.offer_timeout_s
                    start = clock()
                    events = mm.tick(now)
        elif kind == "back_from_wrap_up":
            customer_id = self.rng.choice(list(self.in_call))
            agent_id = self.in_call.pop(customer_id)
            mm.set_available(agent_id, False, now)
            mm.end_call(customer_id, now)  # wrap-up: no new offer yet
            start = clock()
            events = mm.set_available(agent_id, True, now)
        else:
            raise ValueError(kind)
        decided = clock()
        elapsed = decided - start
        changes = mm.take_status_changes(now)
        statuses = iter(changes)
        next(statuses, None)
        self.change_times.append(clock() - start)
        named = 1 + sum(1 for _ in statuses) if len(changes) else 0
        self.named_times.append(clock() - decided)
        self.named.append(named)
        if kind == "accept":
            self.in_call[events[0].customer_id] = agent_id
            events = []
        self.track(events)
        self.accept_all()
        self.refill()
        mm.take_status_changes(self.now)  # the set-up's changes are not the next decision's
        return elapsed


KINDS = (
    "enqueue",
    "enqueue_returning",
    "choose_any",
    "end_call",
    "accept",
    "decline",
    "timeout",
    "back_from_wrap_up",
    "leave",
)


def bench_decisions(samples: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    build = time.perf_counter()
    floor = _Floor(rng)
    build_s = time.perf_counter() - build
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in progress(range(samples), desc="decisions", total=samples):
        kind = rng.choice(KINDS)
        times[kind].append(floor.one_decision(kind) * 1000)
    everything = [t for values in times.values() for t in values]
    statuses_ms = []
    for _ in range(5 if samples < 5000 else 20):
        start = time.perf_counter()
        floor.mm.statuses(floor.now)
        statuses_ms.append((time.perf_counter() - start) * 1000)
    return {
        "customers_waiting": floor.waiting(),
        "agents": AGENTS,
        "queues": len(QUEUES),
        "decisions": len(everything),
        "decision_p50_ms": round(pct(everything, 0.50), 4),
        "decision_p95_ms": round(pct(everything, 0.95), 4),
        "decision_max_ms": round(max(everything), 3),
        "decision_p95_ms_by_kind": {k: round(pct(v, 0.95), 4) for k, v in times.items() if v},
        "change_p50_ms": round(pct(floor.change_times, 0.50) * 1000, 4),
        "change_p95_ms": round(pct(floor.change_times, 0.95) * 1000, 4),
        "change_max_ms": round(max(floor.change_times) * 1000, 3),
        "statuses_all_ms": round(statistics.median(statuses_ms), 2),
        # After the decision, every status its changes name made (what a single process
        # computes by its last send): p50 / p95, and how many statuses that is.
        "statuses_changed_p50_ms": round(pct(floor.named_times, 0.50) * 1000, 3),
        "statuses_changed_p95_ms": round(pct(floor.named_times, 0.95) * 1000, 3),
        "statuses_named_p50": pct([float(n) for n in floor.named], 0.50),
        "statuses_named_p95": pct([float(n) for n in floor.named], 0.95),
        "decision_samples_expected": samples,
        "setup_s": round(build_s, 2),
    }
