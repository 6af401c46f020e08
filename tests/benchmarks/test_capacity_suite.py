"""The capacity suite, tiny: one call at 720p and one at 360p against a real ``telepresence serve``,
with the clients in their own processes. Checks the JSON the issue asks for and that frames and
glass-to-glass samples were really measured (not whether the server meets the targets)."""

from __future__ import annotations

import json

import pytest

from benchmarks import capacity

REQUIRED = {"server_cpu_pct_per_call", "calls_720p30", "calls_360p30", "cores_used"}
TINY = capacity.Plan(
    caps={"720p": 1, "360p": 1},
    settle_s=1.0,
    window_s=2.0,
    idle_s=1.0,
    retry=False,
    label="tiny",
    loop_frames=60,
)


@pytest.mark.slow
async def test_a_tiny_ramp_measures_frames_latency_and_cpu():
    summary = await capacity.measure(TINY)
    json.dumps(summary)  # one JSON object, as the runner prints it
    assert REQUIRED <= summary.keys()
    for size in ("720p", "360p"):
        (step,) = summary[f"steps_{size}"]
        assert step["calls"] == 1 and step["fps_min"] is not None, step  # the call was set up and measured
        assert step["fps_min"] > 0, step  # the customer counted composite frames
        assert step["agent_fps_min"] > 20, step  # the agent's loop kept about its pace (on a busy machine)
        assert summary[f"frames_{size}"] >= 30, summary
        assert summary[f"g2g_samples_{size}"] >= 30, summary  # abs-capture-time on the frames
        # The first call decodes and reads the stamps: the server's capture clock agrees with them.
        assert summary[f"stamp_check_ms_{size}"] is not None, summary
        assert abs(summary[f"stamp_check_ms_{size}"]) < 20, summary
        assert summary[f"capped_{size}"] == step["passed"], summary
    assert summary["server_cpu_pct_per_call"] is not None and summary["server_cpu_pct_per_call"] > 0, summary
    assert 0 < summary["cores_used"] <= summary["cores"], summary
    assert summary["calls_720p30"] in (0, 1) and summary["calls_360p30"] in (0, 1), summary
    assert summary["samples_expected"] == summary["frames_720p"] + summary["frames_360p"], summary
    assert 0 < summary["samples_measured"] <= summary["samples_expected"], summary
