"""A real ``telepresence serve`` in the lab: an aiortc customer behind NAT calls an aiortc agent."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.netlab import Lab, start_serve
from benchmarks.netlab.serve import PORT
from telepresence.auth import Claims, TokenAuthority
from tests.conftest import TEST_SECRET
from tests.network.conftest import needs_netlab

pytestmark = needs_netlab
ROOT = Path(__file__).resolve().parents[2]


def start_server(lab: Lab, state_dir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    return start_serve(lab, state_dir, TEST_SECRET)


def start_peer(lab: Lab, role: str, *args: str) -> subprocess.Popen[str]:
    base = f"http://{lab.address('server')}:{PORT}"
    argv = [sys.executable, "-m", "tests.network.peer", role, base, *args]
    return lab.popen(role, argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def next_event(peer: subprocess.Popen[str], deadline: float) -> dict[str, Any]:
    assert peer.stdout is not None
    ready, _, _ = select.select([peer.stdout], [], [], max(0.0, deadline - time.monotonic()))
    line = peer.stdout.readline() if ready else ""
    if not line:
        err = peer.stderr.read() if peer.poll() is not None and peer.stderr else "(still running)"
        raise AssertionError(f"peer said nothing more (exit {peer.poll()}): {err[-3000:]}")
    event = json.loads(line)
    assert event["event"] != "error", event
    return event


def test_customer_behind_nat_calls_an_agent_with_media_on_the_clean_profile(lab: Lab, tmp_path: Path) -> None:
    # The agent's firewall is open here: getting through it takes TURN over TCP, the other half
    # of issue 13 (tests/turn_server.py). The customer still goes through NAT and the forwarder.
    lab.block_udp("agent", False)
    impairment = lab.impair("customer", "clean")
    server, log = start_server(lab, tmp_path)
    token = TokenAuthority(TEST_SECRET.encode()).mint(
        Claims(name="agent", role="agent", skills=(), languages=(), expires_at=time.time() + 3600)
    )
    try:
        agent = start_peer(lab, "agent", "--token", token)
        deadline = time.monotonic() + 60
        assert next_event(agent, deadline)["event"] == "ready"
        customer = start_peer(lab, "customer", "--hold-s", "2")
        deadline = time.monotonic() + 60
        customer_media = next_event(customer, deadline)
        agent_media = next_event(agent, deadline)
        assert next_event(customer, deadline)["event"] == "ended"
        assert next_event(agent, deadline)["event"] == "ended"
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nserver log:\n{log.read_text(errors='replace')[-3000:]}") from None
    print(json.dumps({"customer": customer_media, "agent": agent_media}))
    assert customer_media["event"] == agent_media["event"] == "media"
    assert customer_media["fps"] >= 10, customer_media
    assert customer_media["loudness"] > 0, customer_media
    # The customer knows only its private address; the server answers from its own.
    assert customer_media["pair"]["local"].startswith(f"host {lab.address('customer')}:")
    assert customer_media["pair"]["remote"].startswith(f"host {lab.address('server')}:")
    assert agent_media["pair"]["local"].startswith(f"host {lab.address('agent')}:")
    # Every packet of the customer's went through the forwarder, both ways.
    stats = impairment.stats()
    assert stats["up"]["sent"] > 100 and stats["down"]["sent"] > 100, stats
    assert server.poll() is None, log.read_text(errors="replace")[-3000:]
