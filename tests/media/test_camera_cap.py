"""media.camera_cap: when a forwarded camera is capped for the customer's link, and how the cap moves."""

from __future__ import annotations

import pytest

from media.camera_cap import CameraCap
from media.encoded import UNCAPPED_BPS

MBPS = 1_000_000


def capped_at(cap: CameraCap, bps: float, now: float = 0.0) -> CameraCap:
    assert cap.update(now, estimate=bps, sending=2 * MBPS, loss=0.2) == bps
    return cap


def test_no_cap_without_loss_or_without_a_lower_estimate() -> None:
    cap = CameraCap(3 * MBPS)
    assert cap.update(0.0, estimate=0.1 * MBPS, sending=2 * MBPS, loss=0.0) is None  # estimate alone
    assert cap.update(0.5, estimate=1.9 * MBPS, sending=2 * MBPS, loss=0.3) is None  # takes what goes out
    assert cap.update(1.0, estimate=None, sending=2 * MBPS, loss=0.3) is None
    assert cap.update(1.5, estimate=0.5 * MBPS, sending=None, loss=None) is None
    assert cap.cap is None


def test_a_cap_rises_in_steps_never_above_the_estimate_and_is_lifted_only_at_the_ceiling() -> None:
    cap = capped_at(CameraCap(3 * MBPS), 1 * MBPS)
    sent = []
    now = 1.0
    while now <= 60:  # a clean link that now takes 2.5 Mbps
        sent.append(cap.update(now, estimate=2.5 * MBPS, sending=cap.cap, loss=0.0))
        now += 0.5
    assert sent[0] == pytest.approx(1.08 * MBPS, rel=0.01)  # +8 % a second, not all at once
    assert all(b is not None and b <= 2.5 * MBPS for b in sent)
    assert sent[-1] == 2.5 * MBPS and cap.cap == 2.5 * MBPS  # never lifted past the customer's estimate
    # A customer who takes more (its estimate follows what it gets) lets it rise to the ceiling.
    while cap.cap is not None:
        said = cap.update(now, estimate=4 * MBPS, sending=cap.cap, loss=0.0)
        now += 0.5
    assert said == UNCAPPED_BPS


def test_a_cap_follows_the_estimate_down_at_once_but_not_a_quiet_cameras_estimate() -> None:
    cap = capped_at(CameraCap(3 * MBPS), 1 * MBPS)
    assert cap.update(1.0, estimate=0.7 * MBPS, sending=0.9 * MBPS, loss=0.0) == 0.7 * MBPS
    # The camera sends less than the cap (a still picture): a lower estimate says nothing of the link.
    assert cap.update(1.5, estimate=0.3 * MBPS, sending=0.2 * MBPS, loss=0.0) == 0.7 * MBPS


def test_a_loss_report_cuts_the_cap_once_not_every_time_it_is_read_again() -> None:
    cap = capped_at(CameraCap(3 * MBPS), 1 * MBPS)  # that report capped it
    assert cap.update(0.5, estimate=1 * MBPS, sending=1 * MBPS, loss=None) == 1 * MBPS  # no new report
    assert cap.update(1.0, estimate=1 * MBPS, sending=1 * MBPS, loss=0.2) == pytest.approx(0.9 * MBPS)
    # Until the next report the last one stands: no second cut, no rise.
    assert cap.update(1.5, estimate=1 * MBPS, sending=0.9 * MBPS, loss=None) == pytest.approx(0.9 * MBPS)
    # Some loss, not much: held where it is.
    assert cap.update(2.5, estimate=1 * MBPS, sending=0.9 * MBPS, loss=0.02) == pytest.approx(0.9 * MBPS)
    assert cap.update(3.0, estimate=1 * MBPS, sending=0.9 * MBPS, loss=None) == pytest.approx(0.9 * MBPS)


def test_a_lifted_cap_starts_again_only_on_new_evidence() -> None:
    cap = capped_at(CameraCap(3 * MBPS), 1 * MBPS)
    cap.lift()
    assert cap.update(1.0, estimate=0.5 * MBPS, sending=2 * MBPS, loss=0.0) is None
    assert capped_at(cap, 0.5 * MBPS, now=2.0).cap == 0.5 * MBPS


def test_a_ceiling_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        CameraCap(0)
