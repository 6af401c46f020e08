"""A customer whose uplink is narrower than where the server asks browsers to start their upload
estimate (media.answer.BROWSER_START_KBPS, 1 Mbps: Chromium's own start is 300 kbps).

The start is a guess about the path; a wrong one must cost seconds at most: the real headless
Chromium customer (benchmarks.netlab.chromium) on a 400 kbps uplink must bring its estimate under
the link within a few seconds of the call's start and keep it there, and the link's queue must
stop overflowing. The agent is the aiortc peer of tests/network/peer.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from benchmarks.netlab import Lab, Link, Profile
from benchmarks.netlab.chromium import run_customer
from benchmarks.netlab.chromium import unavailable as chromium_unavailable
from media.answer import BROWSER_START_KBPS
from telepresence.auth import Claims, TokenAuthority
from tests.conftest import TEST_SECRET
from tests.network.conftest import needs_netlab
from tests.network.test_call_through_nat import PORT, next_event, start_peer, start_server

pytestmark = [
    needs_netlab,
    pytest.mark.skipif(chromium_unavailable() is not None, reason=str(chromium_unavailable())),
    pytest.mark.browser,
    pytest.mark.slow,  # ~40 s: behind --run-slow
]
UPLINK_KBPS = 400
assert UPLINK_KBPS < BROWSER_START_KBPS / 2  # the start is well above the link
NARROW_UPLINK = Profile("narrow uplink", up=Link(10.0, rate_kbps=UPLINK_KBPS), down=Link(10.0))
HOLD_S = 15
SETTLED_S = 3.0  # after the call starts, the estimate is under the link from here on (measured: ~1 s)


def test_a_customer_on_an_uplink_narrower_than_the_start_settles_under_it_within_seconds(
    lab: Lab, tmp_path: Path
) -> None:
    lab.block_udp("agent", False)
    impairment = lab.impair("customer", NARROW_UPLINK, seed=5)
    server, log = start_server(lab, tmp_path)
    token = TokenAuthority(TEST_SECRET.encode()).mint(
        Claims(name="agent", role="agent", skills=(), languages=(), expires_at=time.time() + 3600)
    )
    base = f"http://{lab.address('server')}:{PORT}"
    try:
        agent = start_peer(lab, "agent", "--token", token)
        assert next_event(agent, time.monotonic() + 40)["event"] == "ready"
        found = run_customer(lab, base, HOLD_S, tmp_path)
    except (AssertionError, RuntimeError) as exc:
        raise AssertionError(f"{exc}\nserver log:\n{log.read_text(errors='replace')[-3000:]}") from None
    uploads = found["uploads"]
    print(json.dumps({"uploads": uploads, "link": impairment.stats()}))
    assert found["page_errors"] == [], found["page_errors"]
    estimates = [(u["t"], u["estimate"]) for u in uploads if u["estimate"] is not None]
    assert estimates and estimates[-1][0] > SETTLED_S + 5, f"too few readings: {estimates}"
    late = [e for t, e in estimates if t >= SETTLED_S]
    assert max(late) <= UPLINK_KBPS * 1000, f"still over the {UPLINK_KBPS} kbps link after {SETTLED_S} s: {estimates}"
    # The camera kept going meanwhile, at a good part of the link.
    first, last = uploads[len(uploads) // 2], uploads[-1]
    camera_kbps = (last["video_bytes_sent"] - first["video_bytes_sent"]) * 8 / (last["t"] - first["t"]) / 1000
    assert camera_kbps > 0.3 * UPLINK_KBPS, f"the camera sent {camera_kbps:.0f} kbps: {uploads}"
    assert server.poll() is None, log.read_text(errors="replace")[-3000:]
