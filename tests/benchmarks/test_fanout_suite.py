"""The fan-out suite: its figures' shape from known viewer stats (fast), and a tiny real run (1 and
3 WHEP viewers, Janus, the server and the viewers in processes of their own) behind --run-slow.
No timing is asserted: the figures are whatever this (shared) machine measured."""

from __future__ import annotations

import json

import pytest

from benchmarks import fanout
from benchmarks.fanout_janus import janus_installed
from benchmarks.samples import loss_problem


def _stats(whep: list[tuple[int, list[int]]], janus: list[int]) -> list[dict]:
    """One process's stats: the first WHEP viewer and the Janus viewer read stamps."""
    viewers = [
        {"path": "whep", "stamps": index == 0, "frames": frames, "latencies": ms}
        for index, (frames, ms) in enumerate(whep)
    ]
    viewers.append({"path": "janus", "stamps": True, "frames": len(janus) + 1, "latencies": janus})
    return [{"ok": True, "viewers": viewers}]


def test_the_summary_has_cpu_by_level_the_ratio_and_janus_against_whep():
    one = fanout.level_figures(1, 40.0, 10.0, _stats([(300, [10, 12, 14])], [20, 22]))
    fifty = fanout.level_figures(50, 70.0, 10.0, _stats([(290, [15])] + [(280, [])] * 49, [25]))
    summary = fanout.summarize([one, fifty], quick=True, load=(1.0, 2.0))
    json.dumps(summary)
    assert summary["server_cpu_pct"] == {"1": 40.0, "50": 70.0}
    assert summary["cpu_ratio_50_vs_1"] == 1.75
    # The Janus viewer's pace is the program's: 3 frames in 10 s at one viewer, 2 at fifty.
    assert summary["program_fps"] == {"1": 0.3, "50": 0.2}
    assert summary["server_cpu_pct_at_30fps"] == {"1": 4000.0, "50": 10500.0}
    assert summary["cpu_ratio_at_30fps_50_vs_1"] == 2.62
    assert fifty["whep_viewers_seen"] == 50 and summary["viewer_fps_median"]["50"] == 28.0
    assert summary["glass_to_glass_ms"]["whep"] == {"n": 3, "median": 12.0, "p95": 14}
    assert summary["glass_to_glass_ms"]["janus"]["median"] == 21.0
    assert summary["janus_minus_whep_ms"] == 9.0
    # Each stamp viewer decoded one frame whose stamp did not read: counted as lost, not hidden.
    parts = summary["samples_by_part"]
    assert parts["glass_to_glass"] == {"expected": 300 + 3 + 290 + 2, "measured": 3 + 2 + 1 + 1}
    assert loss_problem(summary) is not None


@pytest.mark.slow
@pytest.mark.skipif(not janus_installed(), reason="janus is not installed (apt-get install janus)")
async def test_a_tiny_run_measures_cpu_and_both_paths(tmp_path):
    summary = await fanout.measure(True, (1, 3), tmp_path, settle_s=1.0, window_s=3.0)
    json.dumps(summary)
    assert summary["levels"] == [1, 3]
    assert set(summary["server_cpu_pct"]) == {"1", "3"}
    assert all(cpu > 0 for cpu in summary["server_cpu_pct"].values())
    assert summary["cpu_ratio_3_vs_1"] is not None
    for path in ("whep", "janus"):
        assert summary["glass_to_glass_ms"][path]["n"] > 10, summary  # frames decoded, stamps read
    assert all(fps > 0 for fps in summary["viewer_fps_min"].values()), summary  # counters counted
    assert summary["samples_measured"] > 0 and summary["samples_by_part"]["cpu"]["measured"] == 2
