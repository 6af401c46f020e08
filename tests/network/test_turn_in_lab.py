"""TURN in the lab (issue 13): coturn in the ``turn`` namespace, ``telepresence serve`` in ``server``,
an aiortc customer behind NAT and an aiortc agent whose UDP the firewall drops.

- The agent gets through only over TURN/TCP; the call has media both ways.
- With ``ice_transport_policy=relay`` every peer, the server's included, gathers only relay
  candidates and every path goes through coturn.
- coturn refuses credentials once ``turn_ttl_s`` has passed, and forged ones; it takes fresh ones.

One lab and one coturn for the module; each test starts its own server with its settings.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.netlab import PREFIX, Lab, cleanup_stale, start_serve
from benchmarks.netlab.namespaces import list_namespaces
from telepresence.auth import Claims, TokenAuthority
from tests.conftest import TEST_SECRET
from tests.network.conftest import needs_netlab
from tests.network.test_call_through_nat import PORT, next_event, start_peer
from tests.turn_server import TURNSERVER, TurnServer

pytestmark = [
    needs_netlab,
    pytest.mark.skipif(TURNSERVER is None, reason="no turnserver (apt-get install coturn)"),
]
ROOT = Path(__file__).resolve().parents[2]
TURN_SECRET = "netlab-coturn-static-auth-secret"
TURN_PORT = 3478


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """The lab (agent's UDP blocked) for the whole module; checks nothing is left after it."""
    cleanup_stale(PREFIX)
    with Lab() as made:
        yield made
    left = [n for n in list_namespaces() if n.startswith(made.tag + "-")]
    assert left == [], f"namespaces left behind: {left}"


@pytest.fixture(scope="module")
def coturn(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TurnServer]:
    """coturn in the ``turn`` namespace, listening (UDP and TCP) and relaying on its public address."""
    address = lab.address("turn")
    server = TurnServer(
        tmp_path_factory.mktemp("coturn"),
        secret=TURN_SECRET,
        port=TURN_PORT,
        relay_ports=(49152, 49407),
        listening_ip=address,
        relay_ip=address,
        prefix=["ip", "netns", "exec", lab.netns("turn")],
    )
    with server:
        yield server


def turn_urls(coturn: TurnServer) -> str:
    return f"{coturn.url('udp')},{coturn.url('tcp')}"


def start_server(lab: Lab, state_dir: Path, **settings: str) -> tuple[subprocess.Popen[bytes], Path]:
    """``telepresence serve`` in the server namespace with ``settings`` (TELEPRESENCE_* names)."""
    return start_serve(lab, state_dir, TEST_SECRET, **settings)


def agent_token() -> str:
    claims = Claims(name="agent", role="agent", skills=(), languages=(), expires_at=time.time() + 3600)
    return TokenAuthority(TEST_SECRET.encode()).mint(claims)


def call(lab: Lab, coturn: TurnServer, state_dir: Path, **settings: str) -> dict[str, Any]:
    """A call through a fresh server with ``settings``: the agent on TURN/TCP only (its UDP is
    dropped), the customer on the first TURN URL (UDP), as aiortc takes it. What each reported."""
    server, log = start_server(
        lab, state_dir, turn_urls=turn_urls(coturn), turn_secret=TURN_SECRET, **settings
    )
    try:
        agent = start_peer(lab, "agent", "--token", agent_token(), "--turn-transport", "tcp")
        deadline = time.monotonic() + 60
        ready = next_event(agent, deadline)
        assert ready["event"] == "ready", ready
        customer = start_peer(lab, "customer", "--hold-s", "1.5")
        deadline = time.monotonic() + 60
        customer_media = next_event(customer, deadline)
        agent_media = next_event(agent, deadline)
        assert next_event(customer, deadline)["event"] == "ended"
        assert next_event(agent, deadline)["event"] == "ended"
        assert server.poll() is None, "the server died"
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\nserver log:\n{log.read_text(errors='replace')[-3000:]}"
            f"\ncoturn log:\n{coturn.log_tail(3000)}"
        ) from None
    finally:
        lab.stop(server)
    seen = {"ready": ready, "customer": customer_media, "agent": agent_media}
    print(json.dumps(seen))
    assert customer_media["event"] == agent_media["event"] == "media", seen
    assert customer_media["fps"] >= 10, seen  # the composite, decoded by the customer
    assert customer_media["loudness"] > 0 and agent_media["loudness"] > 0, seen  # audio both ways
    return seen


def coturn_sessions(coturn: TurnServer, username: str, timeout_s: float = 10.0) -> dict[str, dict[str, Any]]:
    """``username``'s allocations in coturn's log, once each is closed: session id -> the client's
    address and whether it came over TCP (``tcp or tls connected to`` that address first), and the
    bytes relayed to and from its peers (``peer usage``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        log = coturn.log_tail(5_000_000)
        allocated = set(re.findall(rf"session (\d+): realm <[^>]*> user <{re.escape(username)}>: "
                                   r"incoming packet ALLOCATE processed, success", log))  # fmt: skip
        closed = {
            m.group(1): m.group(2)
            for m in re.finditer(r"session (\d+): closed \(2nd stage\).*?, remote (\S+?), reason", log)
        }
        if allocated and allocated <= set(closed) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    tcp_clients = set(re.findall(r"tcp or tls connected to: (\S+)", log))
    sessions = {}
    for session in allocated:
        usage = re.search(rf"session {session}: peer usage: .*?rb=(\d+), sp=\d+, sb=(\d+)", log)
        sessions[session] = {
            "client": closed.get(session),
            "tcp": closed.get(session) in tcp_clients,
            "peer_bytes": int(usage.group(1)) + int(usage.group(2)) if usage else None,
        }
    return sessions


def test_agent_behind_a_udp_firewall_calls_through_coturn_over_tcp(
    lab: Lab, coturn: TurnServer, tmp_path: Path
) -> None:
    seen = call(lab, coturn, tmp_path)
    agent = seen["agent"]
    # The agent's host candidate is there but its UDP goes nowhere: the pair is its relay
    # candidate on coturn, reached over TCP.
    assert "host" in agent["local_types"] and "relay" in agent["local_types"], seen
    assert agent["pair"]["local"].startswith(f"relay {lab.address('turn')}:"), seen
    assert agent["pair"]["via"] == "turn/tcp", seen
    user = seen["ready"]["turn_user"]
    assert user, seen
    # coturn's side: the agent's allocation came over TCP from the agent's address and relayed
    # the call's media (its peer usage; the agent's UDP never left the firewall).
    sessions = coturn_sessions(coturn, user)
    assert sessions, coturn.log_tail(5000)
    for session in sessions.values():
        assert session["tcp"] and session["client"].startswith(f"{lab.address('agent')}:"), sessions
    assert max(s["peer_bytes"] or 0 for s in sessions.values()) > 20_000, sessions
    print(json.dumps({"agent's coturn sessions": sessions}))


def test_relay_policy_relays_every_path(lab: Lab, coturn: TurnServer, tmp_path: Path) -> None:
    seen = call(lab, coturn, tmp_path, ice_transport_policy="relay")
    assert seen["ready"]["policy"] == "relay", seen
    for role in ("customer", "agent"):
        media = seen[role]
        assert media["local_types"] == ["relay"], seen  # gathered: relay only
        assert media["answer_types"] == ["relay"], seen  # the server's peer: relay only
        assert media["pair"]["local"].startswith(f"relay {lab.address('turn')}:"), seen
        assert media["pair"]["remote"].startswith(f"relay {lab.address('turn')}:"), seen
    assert seen["agent"]["pair"]["via"] == "turn/tcp" and seen["customer"]["pair"]["via"] == "turn/udp"
    # coturn's side: the agent over TCP, the customer over UDP from its home router's address (NAT),
    # the server's own peer with credentials of its own; media relayed for the two browsers.
    agent, customer = (coturn_sessions(coturn, seen[k]["turn_user"]) for k in ("ready", "customer"))
    assert agent and all(s["tcp"] for s in agent.values()), agent
    assert customer and not any(s["tcp"] for s in customer.values()), customer
    assert all(s["client"].startswith(f"{lab.public_address('customer')}:") for s in customer.values())
    for sessions in (agent, customer):
        assert max(s["peer_bytes"] or 0 for s in sessions.values()) > 20_000, sessions
    log = coturn.log_tail(5_000_000)
    assert re.search(r"user <\d+:server-call-[^>]*>: incoming packet ALLOCATE processed, success", log)


def test_coturn_refuses_expired_and_forged_credentials_and_takes_fresh_ones(
    lab: Lab, coturn: TurnServer, tmp_path: Path
) -> None:
    ttl_s = 2
    server, log = start_server(
        lab, tmp_path, turn_urls=turn_urls(coturn), turn_secret=TURN_SECRET, turn_ttl_s=str(ttl_s)
    )
    try:
        base = f"http://{lab.address('server')}:{PORT}"
        checker = lab.popen(
            "customer",
            [sys.executable, "-m", "tests.network.peer", "credentials", base],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        outcome = next_event(checker, time.monotonic() + 60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nserver log:\n{log.read_text(errors='replace')[-3000:]}") from None
    finally:
        lab.stop(server)
    print(json.dumps(outcome))
    assert 0 < outcome["ttl_left_s"] <= ttl_s, outcome  # minted at welcome, for turn_ttl_s
    for transport in ("udp", "tcp"):
        assert outcome[f"fresh_{transport}"] == "ok", outcome
        assert "401" in outcome[f"forged_{transport}"], outcome
        assert "401" in outcome[f"expired_{transport}"], outcome
        assert outcome[f"again_{transport}"] == "ok", outcome
    assert outcome["again_username"] != outcome["username"]
