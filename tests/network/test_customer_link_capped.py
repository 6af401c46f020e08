"""A customer whose downlink carries less than the agent's camera sends: the picture must follow
the link (issue 13, "the composite's bitrate follows the customer's link").

While the agent's camera is shown full frame the server forwards it as it came (media.passthrough),
so only the agent's sender can slow down: the server caps it (REMB) at what the customer takes
(media.camera_cap). Lifted all at once after a few seconds without loss, the cap put the 2 Mbps
camera back into the 1 Mbps link; every keyframe asked for then was lost in the bottleneck's
queue, and the customer's picture froze for seconds at a time. The peers are the network suite's
(benchmarks.network_peer): a stamped 720p camera with sensor noise, a customer that reads each
decoded frame's stamp.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from benchmarks.netlab import Lab, Link, Profile
from benchmarks.network_figures import between, gaps, pictures
from tests.network.conftest import lab_call, needs_netlab

pytestmark = [needs_netlab, pytest.mark.slow]  # ~35 s: behind --run-slow

RATE_KBPS = 1000  # half of what the camera sends uncapped
CUSTOMER_LINK = Profile("capped", up=Link(10.0), down=Link(10.0, rate_kbps=RATE_KBPS))
HOLD_S = 18.0
SETTLE_S = 8.0  # the camera starts above the link: the first seconds fill its queue until capped


def test_a_customer_on_a_link_slower_than_the_camera_keeps_getting_fresh_pictures(
    lab: Lab, tmp_path: Path
) -> None:
    lab.block_udp("agent", False)  # the rate, not the firewall (that is tests/network/test_turn_in_lab.py)
    impairment = lab.impair("customer", CUSTOMER_LINK, seed=3)
    with lab_call(lab, tmp_path, HOLD_S) as (customer, media):
        start, end = media["first_stamped"] + SETTLE_S, media["first_stamped"] + HOLD_S
        time.sleep(max(0.0, start - time.time()))
        link_before = impairment.stats()["down"]
        time.sleep(max(0.0, end - time.time()))
        link_after = impairment.stats()["down"]
        result = customer.expect("result", HOLD_S + 60)
    assert link_before["dropped"] > 0, "the link never overflowed: the camera did not start above it"

    shown = pictures(between(result["frames"], start, end))
    assert len(shown) > 2 * (end - start), f"{len(shown)} pictures in {end - start:.0f} s"
    # Fresh pictures every second once the camera is capped (uncapped again, the picture froze
    # for seconds while keyframe after keyframe was lost in the link's queue).
    longest = max(gaps(pictures(result["frames"]), start, end))
    assert longest < 1.0, f"the picture froze for {longest:.2f} s"
    # What is sent fits the link: its queue no longer overflows (a camera back over the rate
    # loses packets at the tail of the bottleneck's queue).
    came = link_after["received"] - link_before["received"]
    dropped = link_after["dropped"] - link_before["dropped"]
    assert dropped <= 0.02 * came, f"the customer's link dropped {dropped} of {came} packets"
