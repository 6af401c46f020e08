"""The network suite, tiny: a real ``telepresence serve`` in the lab's namespaces, one short call on
``mobile`` and one on ``bad`` switched back to clean. Checks the JSON the issue asks for and that
frames, stamps and bytes were really measured (not whether the server meets the targets), and the
figures' arithmetic on made-up frames."""

from __future__ import annotations

import json

import pytest

from benchmarks import network
from benchmarks.netlab import unavailable
from benchmarks.network_figures import gaps, percentile, pictures, recovery_s, window_figures

REQUIRED = {"time_to_media_ms", "g2g_p50_ms", "g2g_p95_ms", "fps", "freezes_over_500ms", "bitrate_kbps"}
TINY = network.Plan(
    profiles=("mobile", "capped", "bad"), settle_s=0.5, window_s=3.0, after_s=3.0, label="tiny"
)


def test_window_figures_count_frames_freezes_and_bitrate() -> None:
    frames = [(i / 30, 40.0) for i in range(30)] + [(1.7 + i / 30, 80.0) for i in range(30)]
    samples = [(0.0, 0), (2.5, 250_000)]
    figures = window_figures(frames, samples, 0.0, 3.0)
    assert figures["frames"] == 60 and figures["fps"] == 20.0
    assert figures["freezes_over_500ms"] == 1  # 0.97 s -> 1.7 s
    assert figures["longest_stall_ms"] == 733
    assert figures["bitrate_kbps"] == 800.0
    assert figures["g2g_p50_ms"] == 60.0 and figures["g2g_p95_ms"] == 80.0
    # A freeze running into the end of the window counts.
    assert gaps([(0.0, None)], 0.0, 1.0) == [1.0]
    assert percentile([], 50) is None


def test_a_repeated_composite_is_a_frozen_picture() -> None:
    # The server repeats its last composite while the agent's camera stalls: same stamp id.
    fresh = [(i / 30, 20.0, None, i) for i in range(30)]
    repeats = [(1 + i / 30, 20.0 + 33 * i, None, 29) for i in range(30)]
    figures = window_figures(fresh + repeats, [], 0.0, 2.0)
    assert len(pictures(fresh + repeats)) == 30
    assert figures["fps"] == 15.0 and figures["presented_fps"] == 30.0
    assert figures["freezes_over_500ms"] == 1 and figures["longest_stall_ms"] == 1033


def test_recovery_is_where_two_seconds_of_clean_figures_begin() -> None:
    clean = {"fps": 30.0, "g2g_p95_ms": 50.0}
    late = [(10 + i / 30, 300.0) for i in range(60)]  # 2 s of late frames after the switch at 10
    good = [(12 + i / 30, 20.0) for i in range(120)]
    assert recovery_s(late + good, 10.0, 16.0, clean) == pytest.approx(2.0, abs=0.11)
    assert recovery_s(good, 12.0, 16.0, clean) == 0.5  # at once: half a window
    assert recovery_s(late, 10.0, 12.0, clean) is None
    assert recovery_s(good, 12.0, 14.5, clean) is None  # not 2 s of good windows before the end
    relapse = [(16 + i / 30, 300.0) for i in range(30)]
    assert recovery_s(late + good + relapse, 10.0, 17.0, clean) == pytest.approx(2.0, abs=0.11)


@pytest.mark.slow
@pytest.mark.skipif(unavailable() is not None, reason=f"no network namespaces here: {unavailable()}")
def test_a_tiny_run_measures_every_profile_figure() -> None:
    summary = network.measure(TINY)
    json.dumps(summary)  # one JSON object, as the runner prints it
    for profile in TINY.profiles:
        figures = summary[profile]
        assert "error" not in figures, figures
        assert REQUIRED <= figures.keys(), figures
        assert figures["bitrate_kbps"] > 0, figures
        assert 0 < figures["time_to_media_ms"] < 30_000, figures
        assert sum(figures["dropped_by_network"].values()) > 0, figures  # loss, or the rate's tail drops
        assert figures["samples_expected"] == figures["frames"] >= figures["samples_measured"], figures
        if profile != "capped":  # its first seconds can be frozen (benchmarks/README, network)
            assert figures["frames"] > 10 and figures["g2g_samples"] > 10, figures  # stamps were read
    # Both links impaired (the default): the agent's too dropped packets.
    assert summary["mobile"]["dropped_by_network"]["agent up"] > 0, summary["mobile"]["dropped_by_network"]
    assert summary["samples_expected"] == sum(summary[p]["samples_expected"] for p in TINY.profiles)
    assert 0 < summary["samples_measured"] <= summary["samples_expected"]
    assert "recovery_s" in summary["bad"] and "longest_stall_ms" in summary["bad"], summary["bad"]
    assert {"mobile_g2g_p95", "mobile_fps", "bad_no_stall_over_2s", "capped_follows_the_link"} <= summary[
        "targets"
    ].keys()
