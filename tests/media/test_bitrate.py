"""The rate governor: a browser's estimates become few, deliberate encoder changes."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from media.bitrate import Bitrate, RateGovernor


def test_a_ramp_is_taken_in_large_steps_not_every_ten_percent():
    governor = RateGovernor(Bitrate(start=500_000, min=300_000, max=5_000_000))
    rates = []
    for second in range(12):  # REMB climbing 8 % a second, one estimate a second
        rates.append(governor.estimate(500_000 * 1.08**second, now=float(second)))
    assert rates[-1] >= 0.8 * 500_000 * 1.08**11  # it does follow the ramp, a step behind
    assert governor.changes <= 4  # but with a handful of encoders, not eleven
    assert all(b >= a for a, b in zip(rates, rates[1:], strict=False))


def test_congestion_is_followed_at_once_and_small_wobbles_are_ignored():
    governor = RateGovernor(Bitrate(start=2_000_000))
    assert governor.estimate(1_900_000, now=0.0) == 2_000_000  # -5 %: not worth a keyframe
    assert governor.estimate(2_200_000, now=5.0) == 2_000_000  # +10 %: neither
    assert governor.estimate(800_000, now=5.5) == 800_000  # a real fall: at once
    assert governor.estimate(500_000, now=5.7) == 800_000  # at most one change a second
    assert governor.estimate(500_000, now=6.6) == 500_000


@given(st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 1)), max_size=60))
def test_any_estimates_keep_the_rate_in_range_and_changes_spaced(estimates):
    bitrate = Bitrate(start=1_000_000, min=300_000, max=3_000_000)
    governor = RateGovernor(bitrate)
    now, last_change, changes = 0.0, -math.inf, 0
    for bps, step in estimates:
        now += step
        before = governor.running
        rate = governor.estimate(bps, now)
        assert bitrate.min <= rate <= bitrate.max
        if rate != before:
            assert now - last_change >= min(governor.fall_pause_s, governor.rise_pause_s) or changes == 0
            last_change, changes = now, changes + 1


def test_a_fall_to_a_rate_the_encoder_is_not_using_changes_nothing():
    governor = RateGovernor(Bitrate(start=1_500_000))
    for tick in range(30):  # a quiet picture: 600 kbps out of a 1.5 Mbps target
        governor.sent(2_500, now=tick / 30)
    assert governor.estimate(1_000_000, now=1.0) == 1_500_000  # still above what goes out
    assert governor.estimate(400_000, now=1.0) == 400_000  # below it: congestion, follow it
