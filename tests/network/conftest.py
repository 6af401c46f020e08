"""Fixtures for tests in network namespaces: a fresh :class:`benchmarks.netlab.Lab` a test."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.netlab import PREFIX, Lab, cleanup_stale, unavailable
from benchmarks.netlab.namespaces import list_namespaces

UNAVAILABLE = unavailable()
needs_netlab = pytest.mark.skipif(
    UNAVAILABLE is not None, reason=f"no network namespaces here: {UNAVAILABLE}"
)


@pytest.fixture(scope="session")
def _stale_swept() -> None:
    # What a killed run (kill -9) left; namespaces of live runs are kept.
    cleanup_stale(PREFIX)


@pytest.fixture
def lab(_stale_swept: None) -> Iterator[Lab]:
    """The lab topology (agent's UDP blocked), torn down after the test; checks nothing is left."""
    with Lab() as made:
        yield made
    left = [n for n in list_namespaces() if n.startswith(made.tag + "-")]
    assert left == [], f"namespaces left behind: {left}"


@contextlib.contextmanager
def lab_call(lab: Lab, tmp_path: Path, hold_s: float) -> Iterator[tuple[Any, dict[str, Any]]]:
    """A call in the lab, as the network suite places one: ``telepresence serve`` on the server's
    side, an aiortc agent and customer (benchmarks.network_peer) in their namespaces; yields
    (the customer's process, its ``media`` event) once the customer has pictures. The customer
    ends the call after ``hold_s``; everything is stopped on the way out."""
    from benchmarks.netlab import start_serve
    from benchmarks.network_process import PeerProcess
    from telepresence.auth import Claims, TokenAuthority

    secret = secrets.token_hex(16)
    server, _log = start_serve(lab, tmp_path, secret, log_level="warning")
    token = TokenAuthority(secret.encode()).mint(
        Claims(name="agent", role="agent", skills=(), languages=(), expires_at=time.time() + 3600)
    )
    agent = customer = None
    try:
        agent = PeerProcess(lab, "agent", ["--token", token], tmp_path)
        agent.expect("ready", 60)
        customer = PeerProcess(lab, "customer", ["--hold-s", str(hold_s)], tmp_path)
        yield customer, customer.expect("media", 60)
    finally:
        for peer in (customer, agent):
            if peer is not None:
                lab.stop(peer.process, timeout=10)
        lab.stop(server, timeout=10)
