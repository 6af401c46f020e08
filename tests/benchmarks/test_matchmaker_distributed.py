"""The distributed matchmaker run, tiny: one Redis, three real ``telepresence serve --redis``
processes, a few agents, sixty waiting. Checks that every figure was really measured across
processes (not whether the centre meets the targets)."""

from __future__ import annotations

import json
import shutil

import pytest

from benchmarks.matchmaker_distributed import Size, bench_distributed

# A snapshot after every step: the fan-out's snapshot figures are measured, not empty.
TINY = Size(waiting=60, agents=8, sockets=30, cycles=4, events=2, label="tiny", snapshot_every_steps=1)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server (Debian: redis-server)")
async def test_a_tiny_distributed_run_times_decisions_and_fan_out_across_three_processes():
    summary = await bench_distributed(TINY)
    json.dumps(summary)  # part of the one JSON line the runner prints
    assert all(key.startswith("distributed_") for key in summary), summary
    assert summary["distributed_size"] == "tiny"
    assert summary["distributed_waiting"] == 60, summary  # the closed-socket customers kept their place
    assert summary["distributed_decision_samples"] == 2 * TINY.cycles, summary
    assert 0 < summary["distributed_decision_p50_ms"] <= summary["distributed_decision_p95_ms"], summary
    assert set(summary["distributed_decision_p95_ms_by_kind"]) == {"join_to_offer", "accept_to_call_started"}
    assert summary["distributed_fanout_events"] == TINY.events, summary
    first, last = summary["distributed_fanout_first_socket_p50_ms"], summary["distributed_fanout_p50_ms"]
    assert 0 < first <= last, summary
    assert summary["distributed_leader"] in (0, 1, 2), summary
    assert len(summary["distributed_cpu_ms_per_fanout_event"]) == 3, summary
    # The last socket's bytes reached its kernel no later than its reader decoded them.
    assert summary["distributed_fanout_delivered_events"] == TINY.events, summary
    assert 0 < summary["distributed_fanout_delivered_p50_ms"] <= last, summary
    assert len(summary["distributed_reader_cpu_ms_per_fanout_event"]) == 3, summary
    # Snapshots written during the fan-out: a count of measured events, each with its time. Each
    # event's step is followed by a snapshot; one that lands after its event was read is counted
    # in the next, so of two events at least one counts it.
    snapshots = summary["distributed_fanout_snapshot_event_ms"]
    assert 1 <= summary["distributed_fanout_snapshot_events"] == len(snapshots) <= TINY.events, summary
    assert all(0 < ms <= summary["distributed_fanout_max_ms"] for ms in snapshots), summary
