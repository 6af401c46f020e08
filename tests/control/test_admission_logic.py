"""Admission control's pure decisions: numbers in, numbers out, no timing."""

from __future__ import annotations

import math

import pytest

from telepresence.admission import (
    REOPEN_MARGIN_PCT,
    CallCost,
    CpuTimes,
    busy_pct,
    parse_proc_stat,
    seats,
    smooth,
)
from telepresence.config import Settings
from telepresence.shedding import SHED_STEPS, next_shed_level

PROC_STAT = """cpu  100 10 50 800 20 5 5 10 0 0
cpu0 50 5 25 400 10 2 3 5 0 0
cpu1 50 5 25 400 10 3 2 5 0 0
intr 12345
ctxt 999
"""


def test_proc_stat_is_read_as_busy_and_total_jiffies_and_cores():
    times = parse_proc_stat(PROC_STAT)
    assert times == CpuTimes(busy=100 + 10 + 50 + 5 + 5 + 10, total=180 + 800 + 20, cores=2)
    with pytest.raises(ValueError):
        parse_proc_stat("intr 1\n")


def test_the_real_proc_stat_parses():
    with open("/proc/stat") as file:
        times = parse_proc_stat(file.read())
    assert times.total >= times.busy > 0 and times.cores >= 1


def test_busy_share_between_two_readings():
    assert busy_pct(CpuTimes(100, 1000, 2), CpuTimes(150, 1100, 2)) == 50.0
    assert busy_pct(CpuTimes(100, 1000, 2), CpuTimes(100, 1000, 2)) is None


def test_smoothing_moves_part_way_and_starts_at_the_first_sample():
    assert smooth(None, 80.0, 1.0) == 80.0
    moved = smooth(20.0, 80.0, 1.0, tau_s=3.0)
    assert 20.0 < moved < 80.0
    assert moved == pytest.approx(20.0 + 60.0 * (1 - math.exp(-1 / 3)))


def decide(**kw) -> int | None:
    params = dict(busy_pct=30.0, budget_pct=85.0, cores=2, call_pct=40.0, calls=1, starting=0)
    params.update(kw)
    return seats(**params)


def test_room_is_counted_in_whole_calls_of_the_machine():
    # 2 cores: a 40 %-of-a-core call is 20 % of the machine; 55 % of room holds 2 calls.
    assert decide(busy_pct=30.0) == 2
    assert decide(busy_pct=50.0) == 1
    assert decide(busy_pct=70.0) == 0
    assert decide(busy_pct=30.0, cores=4) == 5


def test_calls_starting_are_reserved_on_top_of_the_measured_figure():
    assert decide(busy_pct=30.0, starting=1) == 1
    assert decide(busy_pct=30.0, starting=2) == 0


def test_closed_admission_reopens_only_with_a_margin():
    busy = 85.0 - 20.0 - REOPEN_MARGIN_PCT / 2  # room for one call, but not for the margin
    assert decide(busy_pct=busy, was_open=True) == 1
    assert decide(busy_pct=busy, was_open=False) == 0


def test_a_machine_with_no_call_always_admits_one():
    assert decide(busy_pct=99.0, calls=0, starting=0) == 1
    assert decide(busy_pct=99.0, calls=0, starting=1) == 0


def test_no_limit_before_the_first_measurement_or_with_a_full_budget():
    assert decide(busy_pct=None) is None
    assert decide(budget_pct=100.0, busy_pct=99.0) is None


def test_call_cost_is_learnt_above_the_idle_baseline_within_bounds():
    cost = CallCost(prior_pct=40.0, alpha=1.0)
    assert cost.pct == 40.0
    cost.observe(busy_core_pct=30.0, calls=0)  # baseline: 30 % of a core with no call
    cost.observe(busy_core_pct=90.0, calls=2)  # two calls: 30 % each
    assert cost.pct == pytest.approx(30.0)
    cost.observe(busy_core_pct=31.0, calls=5)  # nearly nothing per call: held at prior / 2
    assert cost.pct == 20.0
    cost.observe(busy_core_pct=200.0, calls=0)
    cost.observe(busy_core_pct=199.0, calls=1)
    assert cost.pct == 20.0  # never negative, never under the floor


def test_shedding_goes_one_step_at_a_time_screen_fps_then_resolution():
    assert [s.name for s in SHED_STEPS] == [
        "full",
        "screen_fps_15",
        "screen_fps_5",
        "screen_half_resolution",
    ]
    # The order is the documented one: frame rate falls before resolution does.
    fps_steps = [i for i, s in enumerate(SHED_STEPS) if s.screen_fps is not None and s.screen_scale == 1.0]
    scale_steps = [i for i, s in enumerate(SHED_STEPS) if s.screen_scale < 1.0]
    assert max(fps_steps) < min(scale_steps)
    level, changed_at = 0, None
    for now in range(0, 60, 5):
        new = next_shed_level(
            level, calls=3, busy_pct=99.0, shed_pct=95.0, budget_pct=85.0, now=now, changed_at=changed_at
        )
        assert new - level in (0, 1)
        if new != level:
            level, changed_at = new, now
    assert level == len(SHED_STEPS) - 1  # and no further


def test_shedding_waits_between_steps_and_holds_in_the_band():
    kw = dict(shed_pct=95.0, budget_pct=85.0)
    assert next_shed_level(1, calls=1, busy_pct=99.0, now=3.0, changed_at=0.0, **kw) == 1  # too soon
    assert next_shed_level(1, calls=1, busy_pct=90.0, now=30.0, changed_at=0.0, **kw) == 1  # in the band
    assert next_shed_level(2, calls=1, busy_pct=70.0, now=30.0, changed_at=0.0, **kw) == 1  # back one
    assert next_shed_level(0, calls=1, busy_pct=70.0, now=30.0, changed_at=0.0, **kw) == 0
    assert next_shed_level(0, calls=1, busy_pct=None, now=30.0, changed_at=None, **kw) == 0
    # No call running: never deeper, whatever else keeps the machine busy (it saves nothing).
    assert next_shed_level(0, calls=0, busy_pct=100.0, now=30.0, changed_at=None, **kw) == 0
    assert next_shed_level(2, calls=0, busy_pct=100.0, now=30.0, changed_at=None, **kw) == 2
    # 100 % never sheds.
    assert (
        next_shed_level(
            0, calls=1, busy_pct=100.0, now=30.0, changed_at=None, shed_pct=100.0, budget_pct=85.0
        )
        == 0
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CPU_BUDGET_PCT", "0"),
        ("CPU_BUDGET_PCT", "120"),
        ("CPU_BUDGET_PCT", "nan"),
        ("CPU_SHED_PCT", "-5"),
        ("CALL_CPU_PCT", "0"),
        ("CALL_CPU_PCT", "lots"),
    ],
)
def test_settings_out_of_range_are_refused_at_start(name, value):
    with pytest.raises(ValueError, match=name.lower()):
        Settings.load(env={f"TELEPRESENCE_{name}": value})


def test_default_settings_budget_the_machine():
    settings = Settings.load(env={})
    assert 0 < settings.cpu_budget_pct < 100
    assert settings.cpu_budget_pct <= settings.cpu_shed_pct <= 100
