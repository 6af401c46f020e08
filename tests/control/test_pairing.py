"""Customers and agents over a real server on loopback: the wire and the HTTP endpoints.

The control plane's behaviours (pairing, positions, timeouts, grace periods, wrap-up,
affinity, chat) are tested in memory on a manual clock:
tests/control/test_switchboard_in_memory.py.
"""

from __future__ import annotations

import httpx

from tests.conftest import join, login


async def test_a_socket_closed_mid_call_is_a_drop_and_a_new_socket_rejoins_the_call(server, connect):
    sam = await login(connect, server, "sam")
    ann = await join(connect, "Ann")
    ticket = ann.received[0]["ticket"]
    await sam.send("accept", offer_id=(await sam.expect("offer"))["offer_id"])
    started = await ann.expect("call_started")
    await ann.send("chat", text="hello")
    await ann.expect("chat")
    await ann.close()
    await sam.expect("peer_status", status="reconnecting")
    ann2 = await connect("Ann again")
    await ann2.send("rejoin", ticket=ticket)
    await ann2.expect("welcome")
    assert [m["text"] for m in (await ann2.expect("transcript"))["messages"]] == ["hello"]
    assert (await ann2.expect("call_started"))["call_id"] == started["call_id"]
    await sam.expect("peer_status", status="connected")


async def test_health_status_and_metrics_endpoints(server, connect):
    sam = await login(connect, server, "sam", skills=("billing",))
    ann = await join(connect, "Ann", skill="billing")
    await join(connect, "Bob")
    await sam.send("accept", offer_id=(await sam.expect("offer"))["offer_id"])
    await ann.expect("call_started")
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        status = (await http.get("/api/status")).json()
        assert status["agents"]["busy"] == 1 and status["calls"]["active"] == 1
        assert {q["queue"]: q["waiting"] for q in status["queues"]} == {"billing/any": 0, "general/any": 1}
        assert "Ann" not in str(status) and "Bob" not in str(status)
        metrics = await http.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        text = metrics.text
        assert 'telepresence_queue_waiting{queue="general/any"} 1.0' in text
        assert 'telepresence_agents{state="busy"} 1.0' in text
        assert 'telepresence_offers_total{outcome="accepted"} 1.0' in text
        assert "telepresence_time_to_answer_seconds_count 1.0" in text
