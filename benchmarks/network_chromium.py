"""The network suite's Chromium row: ``mobile`` on both links, the customer a real headless Chromium.

Issue 13 asks that every media figure that matters to a customer is also measured in Chromium.
The customer is benchmarks.netlab.chromium's (the web client's page, driven by playwright inside
the customer's namespace); the agent is the suite's aiortc agent. The page cannot read the
agent's stamps (media.stamp), so this row has Chromium's own figures over the window instead of
glass-to-glass: ``fps`` (frames decoded a second), ``freezeCount`` and ``totalFreezesDuration_s``
(Chromium's freeze: a frame later than max(3 frame intervals, interval + 150 ms)),
``jitterBufferDelay_ms`` (a frame's mean wait in Chromium's jitter buffer), ``bitrate_kbps``
(bytes received), NACKs, PLIs and packets lost after retransmission; ``time_to_playing_ms``: the
page in its call to 30 frames played (the suite's ``time_to_media_ms`` stops at the first frame).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.netlab import Lab
from benchmarks.netlab.chromium import inbound_figures, run_customer, unavailable
from benchmarks.netlab.serve import PORT

PROFILE = "mobile"
NAME = "mobile_chromium"


def measure_chromium(
    lab: Lab, links: Any, window_s: float, token: str, logdir: Path, peer_process: Any
) -> dict[str, Any]:
    """One call on ``mobile`` with a Chromium customer; its figures (``{"skipped": why}`` without
    Chromium). ``links`` and ``peer_process`` are the suite's (benchmarks.network)."""
    reason = unavailable()
    if reason is not None:
        return {"skipped": reason}
    links.set(PROFILE)
    before = links.dropped()
    agent = peer_process(lab, "agent", ["--token", token], logdir)
    try:
        agent.expect("ready", 120)
        found = run_customer(lab, f"http://{lab.address('server')}:{PORT}", window_s, logdir)
    finally:
        lab.stop(agent.process, timeout=10)
    dropped = links.dropped()
    figures = inbound_figures(found, window_s)
    return {
        "customer": "Chromium",
        "time_to_playing_ms": round((found["playing_s"] - found["in_call_s"]) * 1000),
        **figures,
        "window_s": window_s,
        "page_errors": found["page_errors"],
        "dropped_by_network": {k: dropped[k] - before[k] for k in dropped},
    }


def target(figures: dict[str, Any]) -> dict[str, Any]:
    """The mobile targets Chromium can judge: fps >= 25 and no freeze (its own count)."""
    return {
        "fps": figures["fps"],
        "freezes": figures["freezeCount"],
        "freezes_s": figures["totalFreezesDuration_s"],
        "met": figures["fps"] >= 25 and figures["freezeCount"] == 0,
    }
