"""The impairment's pure core: which packets are lost and when the others leave (no root needed)."""

from __future__ import annotations

import random
import statistics

import pytest

from benchmarks.netlab.impair import PROFILES, Link, Profile, profile_of
from benchmarks.netlab.shaper import Shaper


def releases(shaper: Shaper, count: int, spacing_s: float, size: int = 1000) -> list[float | None]:
    return [shaper.admit(size, i * spacing_s) for i in range(count)]


def test_a_clean_link_releases_each_packet_at_once() -> None:
    assert releases(Shaper(random.Random(1)), 5, 0.01) == [0.0, 0.01, 0.02, 0.03, 0.04]


def test_loss_is_the_configured_fraction_and_the_same_for_the_same_seed() -> None:
    link = Link(loss=0.02)
    first = releases(Shaper(random.Random(7), link=link), 50_000, 0.001)
    again = releases(Shaper(random.Random(7), link=link), 50_000, 0.001)
    assert first == again
    assert first.count(None) / len(first) == pytest.approx(0.02, abs=0.002)


def test_delay_and_jitter_stay_in_bounds_with_the_configured_mean() -> None:
    shaper = Shaper(random.Random(3), reorder=True, link=Link(delay_ms=50, jitter_ms=10))
    delays = [(r - i * 0.02) * 1000 for i, r in enumerate(releases(shaper, 20_000, 0.02)) if r is not None]
    assert 40 <= min(delays) and max(delays) <= 60
    assert statistics.fmean(delays) == pytest.approx(50, abs=0.3)
    assert statistics.pstdev(delays) == pytest.approx(10 / 3**0.5, abs=0.2)  # uniform on ±10


def test_order_is_kept_unless_reordering_is_asked_for() -> None:
    link = Link(delay_ms=50, jitter_ms=20)
    kept = [r for r in releases(Shaper(random.Random(5), link=link), 2_000, 0.001) if r is not None]
    assert kept == sorted(kept)
    free = [
        r for r in releases(Shaper(random.Random(5), reorder=True, link=link), 2_000, 0.001) if r is not None
    ]
    assert free != sorted(free)


def test_a_rate_limit_spaces_packets_and_drops_past_the_queue() -> None:
    # 1,000-byte packets on 800 kbit/s: 10 ms each; 40 arriving at once, 100 ms of queue.
    shaper = Shaper(random.Random(1), link=Link(rate_kbps=800, queue_ms=100))
    out = [shaper.admit(1000, 0.0) for _ in range(40)]
    kept = [r for r in out if r is not None]
    assert kept[:3] == pytest.approx([0.01, 0.02, 0.03])
    assert len(kept) == 11 and out[11:] == [None] * 29


def test_a_new_link_applies_from_the_next_packet() -> None:
    shaper = Shaper(random.Random(1))
    assert shaper.admit(100, 1.0) == 1.0
    shaper.link = Link(delay_ms=100)
    assert shaper.admit(100, 2.0) == pytest.approx(2.1)


def test_profiles_are_half_of_each_on_either_direction() -> None:
    mobile = PROFILES["mobile"]
    assert mobile.up == mobile.down
    assert (mobile.up.delay_ms, mobile.up.jitter_ms) == (50, 10)
    assert 1 - (1 - mobile.up.loss) ** 2 == pytest.approx(0.02)
    assert profile_of("bad") is PROFILES["bad"]
    assert profile_of(Profile("mine")).name == "mine"
    with pytest.raises(ValueError, match="unknown profile"):
        profile_of("dial-up")
