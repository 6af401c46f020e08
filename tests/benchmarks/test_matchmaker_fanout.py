"""The matchmaker suite's fan-out part, tiny: two real servers, 1,000 watching sockets each
held by the lean reader process; the shape of what it reports (no timing asserted)."""

from __future__ import annotations

from benchmarks.matchmaker_fanout import SOCKETS, bench_fanout


async def test_fanout_reports_every_event_read_and_delivered_on_both_servers():
    summary = await bench_fanout(2, waiting=SOCKETS + 20, agents=3)
    assert summary["fanout_samples_expected"] == summary["fanout_samples_measured"] == 4, summary
    assert summary["fanout_waiting"] == SOCKETS + 20
    for server in ("fanout", "fanout_no_deflate"):
        read, delivered = summary[f"{server}_p50_ms"], summary[f"{server}_delivered_p50_ms"]
        assert 0 < summary[f"{server}_first_socket_p50_ms"] <= read <= summary[f"{server}_max_ms"], summary
        # The kernel had the last socket's bytes before its reader decoded them (two clocks:
        # a millisecond of slack).
        assert 0 < delivered <= read + 1, summary
        assert summary[f"{server}_server_kb_per_socket"] > 0, summary
