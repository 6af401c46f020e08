"""Loss on the AGENT's link: the agent's camera reaches the server through a lossy link, and the
customer (on a clean link) must still see the camera's pictures, repaired, not skipped.

This froze the composite for seconds (issue 13): aiortc dropped every retransmission to a peer
with two video sections (a browser agent has camera and screen), so each lost packet cost the
frames up to the next keyframe, and the composite showed the camera's last keyframe, seconds old.
The peers are the network suite's (benchmarks.network_peer): a stamped 720p camera, a customer
that reads each decoded frame's stamp.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.netlab import Lab, Profile
from benchmarks.network_figures import between, gaps, pictures
from tests.network.conftest import lab_call, needs_netlab

pytestmark = needs_netlab

# ~3 % of the packets lost each way on the agent's link (a bad mobile uplink): at ~200 packets a
# second, several losses every second, each one a frame's packet.
AGENT_LINK = Profile.round_trip("lossy-agent", rtt_ms=40, loss=0.06)
HOLD_S = 8.0
SETTLE_S = 1.5  # the first second: the encoder's ramp and the first keyframe


def test_loss_on_the_agents_link_is_repaired_and_the_customer_keeps_seeing_fresh_pictures(
    lab: Lab, tmp_path: Path
) -> None:
    lab.block_udp("agent", False)  # loss, not the firewall (that is tests/network/test_turn_in_lab.py)
    impairment = lab.impair("agent", AGENT_LINK, seed=7)
    with lab_call(lab, tmp_path, HOLD_S) as (customer, media):
        result = customer.expect("result", HOLD_S + 60)
    dropped = impairment.stats()["up"]["dropped"]
    assert dropped >= 10, f"the agent's link lost only {dropped} packets: the test saw no loss"

    start = media["first_stamped"] + SETTLE_S
    frames = between(result["frames"], start, start + HOLD_S - SETTLE_S)
    ids = [f[3] for f in pictures(frames) if f[3] is not None]
    assert len(ids) > 50, f"{len(ids)} pictures"
    # Repaired, not skipped: the camera's frames reach the customer nearly all (a lost packet
    # given up costs its frame and every frame up to a keyframe; unrepaired, most were).
    span = max(ids) - min(ids) + 1
    assert len(set(ids)) >= 0.9 * span, f"{len(set(ids))} of the camera's {span} frames reached the customer"
    # No picture decoded without its reference (an artefact hides the stamp).
    unreadable = sum(1 for f in frames if f[1] is None)
    assert unreadable <= len(frames) // 100, f"{unreadable} of {len(frames)} frames unreadable"
    # Fresh pictures all along: no second without one.
    longest = max(gaps(pictures(result["frames"]), start, start + HOLD_S - SETTLE_S))
    assert longest < 1.0, f"the picture froze for {longest:.2f} s"
