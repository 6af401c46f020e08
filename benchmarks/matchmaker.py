"""Suite "matchmaker": pairing decisions at contact-centre scale, and position fan-out over WebSockets.

(a) Decisions. One Matchmaker holds 10,000 waiting customers over 21 queues (5 skills x
    4 languages, and the general queue) and 500 agents with two skills and one or two
    languages each, every one of them in a call. A random mix of what a busy floor does is
    timed one call at a time, the queue kept at 10,000: a customer joins (every agent busy),
    a returning customer joins (their agent busy: the choice with both waits), one chooses
    the next available, a call ends (the agent's seat goes to the earliest eligible
    customer), an agent accepts, declines (the customer goes on, the agent takes the next),
    comes back from wrap-up (takes the next), lets an offer time out (``tick``), and a
    waiting customer leaves. Also timed: what the switchboard reads after a decision to
    push positions, ``statuses()`` of the queues ``take_changed_queues()`` names (sampled),
    and ``statuses()`` of all 10,000 (what it read after every message before).

(b) Fan-out. A real server (uvicorn, the app as ``telepresence serve`` builds it) runs on
    loopback in its own process; 1,000 customer WebSockets (the ``websockets`` client, in
    this process) join one queue behind a few more customers. Each event is the head
    customer leaving, which moves everybody's position: timed from sending ``leave`` until
    every one of the 1,000 sockets has read its new ``queue_status``. A second server with
    permessage-deflate off runs alongside, events interleaved, for comparison; both report
    their memory per socket.

Targets (issue 3): decision p95 < 1 ms, fan-out p95 < 100 ms.

(a) is :mod:`benchmarks.matchmaker_decisions`, (b) :mod:`benchmarks.matchmaker_fanout`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from benchmarks.matchmaker_decisions import bench_decisions
from benchmarks.matchmaker_fanout import bench_fanout


def run(quick: bool) -> dict[str, Any]:
    summary = bench_decisions(2_000 if quick else 20_000)
    summary.update(asyncio.run(bench_fanout(20 if quick else 100)))
    summary["targets"] = {"decision_p95_ms": 1.0, "fanout_p95_ms": 100.0}
    return summary
