"""Customers and agents pairing over a real server on loopback."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import join, login


async def test_pairs_by_skill_and_language(server, connect):
    sam = await login(connect, server, "sam", skills=("billing",), languages=("en",))
    lea = await login(connect, server, "lea", languages=("fr",))
    ann = await join(connect, "Ann", skill="billing", language="en", topic="double charge")
    offer = await sam.expect("offer")
    assert offer["customer"] == {
        "name": "Ann",
        "topic": "double charge",
        "skill": "billing",
        "language": "en",
    }
    bob = await join(connect, "Bob", language="fr")
    offer_bob = await lea.expect("offer")
    assert offer_bob["customer"]["name"] == "Bob"
    # Lea speaks no English billing: Ann's offer never reached her.
    assert not [m for m in lea.received if m["type"] == "offer" and m["customer"]["name"] == "Ann"]
    await sam.send("accept", offer_id=offer["offer_id"])
    started = await ann.expect("call_started")
    assert started["agent"] == {"name": "sam"}
    agent_view = await sam.expect("call_started")
    assert agent_view["call_id"] == started["call_id"]
    await bob.close()


async def test_customer_with_no_eligible_agent_waits_with_unknown_wait(server, connect):
    await login(connect, server, "lea", languages=("fr",))
    ann = await join(connect, "Ann", language="de")
    status = await ann.expect("queue_status")
    assert status["position"] == 1 and status["expected_wait_s"] is None


async def test_longest_idle_agent_gets_the_customer(server, connect):
    first = await login(connect, server, "first")
    await asyncio.sleep(0.05)
    second = await login(connect, server, "second")
    await join(connect, "Ann")
    await first.expect("offer")
    assert await second.latest("offer") is None


async def test_positions_and_expected_waits_are_pushed_when_they_change(server, connect):
    sam = await login(connect, server, "sam")
    ann = await join(connect, "Ann")
    offer = await sam.expect("offer")
    await sam.send("accept", offer_id=offer["offer_id"])
    await ann.expect("call_started")
    bob = await join(connect, "Bob")
    cat = await join(connect, "Cat")
    bob_status = await bob.expect("queue_status")
    assert bob_status["position"] == 1
    cat_status = await cat.expect("queue_status")
    assert cat_status["position"] == 2
    # One agent seat, 180 s prior handle time: Bob waits ~180 s, Cat ~360 s.
    assert bob_status["expected_wait_s"] == 180
    assert cat_status["expected_wait_s"] == 360
    await bob.send("leave")
    await bob.expect("left")
    moved = await cat.expect("queue_status", position=1)
    assert moved["expected_wait_s"] < cat_status["expected_wait_s"]


async def test_chat_while_waiting_is_handed_to_the_agent(server, connect):
    ann = await join(connect, "Ann")
    await ann.send("chat", text="my order never arrived")
    echo = await ann.expect("chat")
    assert echo["from"] == "customer" and echo["text"] == "my order never arrived"
    sam = await login(connect, server, "sam")
    offer = await sam.expect("offer")
    assert [m["text"] for m in offer["transcript"]] == ["my order never arrived"]
    await sam.send("accept", offer_id=offer["offer_id"])
    started = await sam.expect("call_started")
    assert [m["text"] for m in started["transcript"]] == ["my order never arrived"]
    await sam.send("chat", text="let me look")
    assert (await ann.expect("chat", **{"from": "agent"}))["text"] == "let me look"
    await ann.send("chat", text="thanks")
    assert (await sam.expect("chat", **{"from": "customer"}))["text"] == "thanks"


async def test_returning_customer_chooses_to_wait_for_their_last_agent(server, connect):
    sam = await login(connect, server, "sam")
    ann = await join(connect, "Ann")
    welcome = ann.received[0]
    offer = await sam.expect("offer")
    await sam.send("accept", offer_id=offer["offer_id"])
    await ann.expect("call_started")
    await sam.send("end_call")
    await ann.expect("call_ended")
    # Sam takes Bob; Ann comes back while Sam is busy, and Lea is free.
    lea = await login(connect, server, "lea", available=False)
    bob = await join(connect, "Bob")
    offer = await sam.expect("offer")
    await sam.send("accept", offer_id=offer["offer_id"])
    await bob.expect("call_started")
    await lea.send("set_status", status="available")
    ann2 = await join(connect, "Ann", customer_key=welcome["customer_key"])
    choice = await ann2.expect("choice")
    assert choice["agent_name"] == "sam"
    assert choice["agent_wait_s"] > 0 and choice["any_wait_s"] == 0
    await ann2.send("choose", wait_for="agent")
    assert await lea.latest("offer") is None  # held for Sam, not offered to Lea
    await sam.send("end_call")
    returning = await sam.expect("offer")
    assert returning["customer"]["name"] == "Ann"
    assert returning["history"]["returning"] and returning["history"]["last_agent"] == "sam"


async def test_returning_customer_can_take_the_next_available_agent(server, connect):
    sam = await login(connect, server, "sam")
    ann = await join(connect, "Ann")
    key = ann.received[0]["customer_key"]
    await sam.send("accept", offer_id=(await sam.expect("offer"))["offer_id"])
    await sam.send("end_call")
    await ann.expect("call_ended")
    bob = await join(connect, "Bob")
    await sam.send("accept", offer_id=(await sam.expect("offer"))["offer_id"])
    await bob.expect("call_started")
    lea = await login(connect, server, "lea")
    ann2 = await join(connect, "Ann", customer_key=key)
    await ann2.expect("choice")
    await ann2.send("choose", wait_for="any")
    assert (await lea.expect("offer"))["customer"]["name"] == "Ann"


async def test_customer_goes_back_to_the_head_when_their_agent_drops(server, connect):
    sam = await login(connect, server, "sam")
    ann = await join(connect, "Ann")
    await sam.send("accept", offer_id=(await sam.expect("offer"))["offer_id"])
    await ann.expect("call_started")
    bob = await join(connect, "Bob")
    await bob.expect("queue_status", position=1)
    await sam.close()
    await ann.expect("peer_status", status="reconnecting")
    ended = await ann.expect("call_ended")  # after the agent's 0.3 s grace period
    assert ended["requeued"] is True and ended["reason"] == "agent_left"
    assert (await ann.expect("queue_status", state="waiting"))["position"] == 1
    assert (await bob.expect("queue_status", position=2))["position"] == 2
    lea = await login(connect, server, "lea")
    assert (await lea.expect("offer"))["customer"]["name"] == "Ann"


async def test_offer_times_out_to_the_next_agent_and_silent_agent_goes_away(tmp_path):
    import websockets

    from tests.conftest import Client, run_server

    async with run_server(tmp_path, offer_timeout_s=0.3, max_missed_offers=1, wrap_up_s=0) as server:

        async def connect(label):
            return Client(await websockets.connect(server.ws_url), label)

        silent = await login(connect, server, "silent")
        await asyncio.sleep(0.02)
        other = await login(connect, server, "other", available=False)
        ann = await join(connect, "Ann")
        await silent.expect("offer")
        await other.send("set_status", status="available")
        withdrawn = await silent.expect("offer_withdrawn", timeout=3)
        assert withdrawn["reason"] == "timeout"
        assert (await silent.expect("agent_status", status="away"))["reason"] == "missed_offers"
        assert (await other.expect("offer", timeout=3))["customer"]["name"] == "Ann"
        await ann.expect("queue_status", state="offered")
        for client in (silent, other, ann):
            await client.close()


async def test_declined_offer_goes_to_the_next_agent(server, connect):
    sam = await login(connect, server, "sam")
    await asyncio.sleep(0.02)
    lea = await login(connect, server, "lea")
    await join(connect, "Ann")
    offer = await sam.expect("offer")
    await sam.send("decline", offer_id=offer["offer_id"])
    assert (await sam.expect("offer_withdrawn"))["reason"] == "declined"
    assert (await lea.expect("offer"))["customer"]["name"] == "Ann"


async def test_auto_answer_starts_the_call_without_a_click(server, connect):
    sam = await login(connect, server, "sam")
    await sam.send("auto_answer", enabled=True)
    await sam.expect("auto_answer")
    ann = await join(connect, "Ann")
    await ann.expect("call_started")
    assert await sam.latest("offer") is None


async def test_dropped_tab_rejoins_with_its_ticket_keeping_its_place(server, connect):
    ann = await join(connect, "Ann")
    bob = await join(connect, "Bob")
    ticket = bob.received[0]["ticket"]
    await bob.expect("queue_status", position=2)
    await bob.close()
    await join(connect, "Cat")
    bob2 = await connect("Bob again")
    await bob2.send("rejoin", ticket=ticket)
    assert (await bob2.expect("welcome"))["rejoined"] is True
    assert (await bob2.expect("queue_status"))["position"] == 2
    await ann.send("leave")
    await bob2.expect("queue_status", position=1)


async def test_rejoin_during_a_call_returns_to_the_call(server, connect):
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


async def test_customer_who_never_returns_is_counted_abandoned(tmp_path):
    import websockets

    from tests.conftest import Client, run_server

    async with run_server(tmp_path, rejoin_grace_s=0.2) as server:
        ws = await websockets.connect(server.ws_url)
        ann = Client(ws, "Ann")
        await ann.send("join", name="Ann")
        ticket = (await ann.expect("welcome"))["ticket"]
        await ann.close()
        await asyncio.sleep(0.6)
        async with httpx.AsyncClient() as http:
            status = (await http.get(server.url + "/api/status")).json()
        assert status["queues"][0]["abandoned"] == 1 and status["queues"][0]["waiting"] == 0
        again = Client(await websockets.connect(server.ws_url), "Ann again")
        await again.send("rejoin", ticket=ticket)
        assert (await again.expect("error"))["code"] == "unknown_ticket"
        await again.close()


async def test_call_end_and_wrap_up_notes_reach_the_next_offer(tmp_path):
    import websockets

    from tests.conftest import Client, run_server

    async with run_server(tmp_path, wrap_up_s=30) as server:

        async def connect(label):
            return Client(await websockets.connect(server.ws_url), label)

        sam = await login(connect, server, "sam")
        ann = await join(connect, "Ann")
        key = ann.received[0]["customer_key"]
        await sam.send("accept", offer_id=(await sam.expect("offer"))["offer_id"])
        call = await sam.expect("call_started")
        await ann.send("end_call")
        assert (await ann.expect("call_ended"))["reason"] == "customer_hung_up"
        await sam.expect("agent_status", status="wrap_up")
        ann2 = await join(connect, "Ann", customer_key=key)
        cat = await join(connect, "Cat")
        # Sam's seat still counts while he wraps up: Cat is told a wait, not "unknown".
        assert (await cat.expect("queue_status"))["expected_wait_s"] is not None
        assert await sam.latest("offer") is None  # no offers during wrap-up
        await sam.send("wrap_up", call_id=call["call_id"], notes="refund issued")
        offer = await sam.expect("offer")
        assert offer["history"]["notes"] == ["refund issued"] and offer["history"]["calls"] == 1
        for client in (sam, ann, ann2, cat):
            await client.close()


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


async def test_agent_reload_within_the_grace_period_keeps_the_call(server, connect):
    sam = await login(connect, server, "sam")
    ann = await join(connect, "Ann")
    await sam.send("accept", offer_id=(await sam.expect("offer"))["offer_id"])
    started = await ann.expect("call_started")
    await sam.close()
    await ann.expect("peer_status", status="reconnecting")
    sam2 = await connect("sam reloaded")
    await sam2.send("login", token=server.token("sam"))
    logged_in = await sam2.expect("logged_in")
    assert [c["call_id"] for c in logged_in["calls"]] == [started["call_id"]]
    await ann.expect("peer_status", status="connected")
    await asyncio.sleep(0.5)  # past the grace period: nothing ends
    await sam2.send("chat", text="sorry, my page reloaded")
    assert (await ann.expect("chat"))["text"] == "sorry, my page reloaded"
    assert await ann.latest("call_ended") is None


async def test_operator_shares_no_session_with_an_agent_of_the_same_name(server, connect):
    sam = await login(connect, server, "sam")
    operator = await connect("operator sam")
    await operator.send("login", token=server.token("sam", role="operator"))
    assert (await operator.expect("logged_in"))["role"] == "operator"
    await operator.send("set_status", status="available")
    assert (await operator.expect("error"))["code"] == "forbidden"
    await operator.close()
    await join(connect, "Ann")
    assert (await sam.expect("offer"))["customer"]["name"] == "Ann"
