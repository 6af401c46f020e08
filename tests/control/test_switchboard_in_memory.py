"""The control plane in memory: the real switchboard behind fake connections on a manual clock.

No uvicorn and no sleeps: a timeout or grace period is crossed with ``centre.advance``. What
needs the wire itself (framing, close 1009, rate limits, HTTP endpoints) stays in the
loopback tests.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.control.fakes import Centre, FakeConnection


@pytest.fixture
async def centre() -> AsyncIterator[Centre]:
    centre = Centre()
    yield centre
    await centre.stop()


@pytest.fixture
async def make_centre() -> AsyncIterator[Callable[..., Centre]]:
    """Centres with settings of a test's own, stopped at the end."""
    made: list[Centre] = []

    def make(**overrides: Any) -> Centre:
        made.append(Centre(**overrides))
        return made[-1]

    yield make
    for centre in made:
        await centre.stop()


def offered_names(agent: FakeConnection) -> list[str]:
    return [m["customer"]["name"] for m in agent.of_type("offer")]


# ------------------------------------------------------------------- pairing


async def test_pairs_by_skill_and_language(centre: Centre) -> None:
    sam = await centre.login("sam", skills=("billing",), languages=("en",))
    lea = await centre.login("lea", languages=("fr",))
    ann = await centre.join("Ann", skill="billing", language="en", topic="double charge")
    offer = sam.last("offer")
    assert offer["customer"] == {
        "name": "Ann",
        "topic": "double charge",
        "skill": "billing",
        "language": "en",
    }
    assert offer["expires_in_s"] == centre.settings.offer_timeout_s
    await centre.join("Bob", language="fr")
    assert offered_names(lea) == ["Bob"]  # Lea speaks no English billing: Ann never reached her
    assert offered_names(sam) == ["Ann"]
    await centre.accept(sam)
    started = ann.last("call_started")
    assert started["agent"] == {"name": "sam"}
    agent_view = sam.last("call_started")
    assert agent_view["call_id"] == started["call_id"] and agent_view["offer_id"] == offer["offer_id"]
    assert sam.last("agent_status")["status"] == "busy"


async def test_customer_with_no_eligible_agent_waits_with_unknown_wait(centre: Centre) -> None:
    lea = await centre.login("lea", languages=("fr",))
    ann = await centre.join("Ann", language="de")
    status = ann.last("queue_status")
    assert status["state"] == "waiting" and status["position"] == 1 and status["expected_wait_s"] is None
    assert lea.of_type("offer") == []


async def test_longest_idle_agent_gets_the_customer(centre: Centre) -> None:
    first = await centre.login("first")
    await centre.advance(1)
    second = await centre.login("second")
    await centre.join("Ann")
    assert offered_names(first) == ["Ann"]
    assert second.of_type("offer") == []


async def test_waiting_customers_see_distinct_positions_and_waits_pushed_when_they_change(
    centre: Centre,
) -> None:
    sam = await centre.login("sam")
    ann = await centre.join("Ann")
    await centre.accept(sam)
    ann.last("call_started")
    bob, cat, dan = [await centre.join(name) for name in ("Bob", "Cat", "Dan")]
    statuses = [c.last("queue_status") for c in (bob, cat, dan)]
    assert [s["position"] for s in statuses] == [1, 2, 3]
    # One agent seat, 180 s prior handle time: Bob waits ~180 s, Cat ~360 s, Dan ~540 s.
    assert [s["expected_wait_s"] for s in statuses] == [180, 360, 540]
    cat_mark = cat.mark()
    await centre.send(bob, {"type": "leave"})
    assert bob.last("left") == {"type": "left"}
    assert [s["position"] for s in cat.since(cat_mark, "queue_status")] == [1]
    assert dan.last("queue_status")["position"] == 2
    assert cat.last("queue_status")["expected_wait_s"] < statuses[1]["expected_wait_s"]


async def test_auto_answer_starts_the_call_without_a_click(centre: Centre) -> None:
    sam = await centre.login("sam")
    await centre.send(sam, {"type": "auto_answer", "enabled": True})
    assert sam.last("auto_answer")["enabled"] is True
    ann = await centre.join("Ann")
    assert ann.last("call_started")["agent"] == {"name": "sam"}
    assert sam.of_type("offer") == []


async def test_operator_shares_no_session_with_an_agent_of_the_same_name(centre: Centre) -> None:
    sam = await centre.login("sam")
    operator = await centre.login("sam", role="operator")
    assert operator.last("logged_in")["role"] == "operator"
    await centre.send(operator, {"type": "set_status", "status": "available"})
    assert operator.last("error")["code"] == "forbidden"
    await centre.close(operator)
    assert not sam.closed
    await centre.join("Ann")
    assert offered_names(sam) == ["Ann"]


# ----------------------------------------------------------- offers in time


async def test_offer_times_out_to_the_next_agent_and_the_silent_agent_goes_away(
    make_centre: Callable[..., Centre],
) -> None:
    centre = make_centre(offer_timeout_s=30, max_missed_offers=1)
    silent = await centre.login("silent")
    await centre.advance(1)
    other = await centre.login("other", available=False)
    ann = await centre.join("Ann")
    assert offered_names(silent) == ["Ann"]
    await centre.send(other, {"type": "set_status", "status": "available"})
    await centre.advance(29.9)
    assert silent.of_type("offer_withdrawn") == [] and other.of_type("offer") == []
    await centre.advance(0.2)
    assert silent.last("offer_withdrawn")["reason"] == "timeout"
    assert silent.last("agent_status", status="away")["reason"] == "missed_offers"
    assert offered_names(other) == ["Ann"]
    assert ann.last("queue_status")["state"] == "offered"
    assert centre.metrics.registry.get_sample_value("telepresence_offers_total", {"outcome": "timeout"}) == 1


async def test_a_long_jump_of_the_clock_runs_each_timeout_at_its_own_time(
    make_centre: Callable[..., Centre],
) -> None:
    centre = make_centre(offer_timeout_s=30, max_missed_offers=5)
    first = await centre.login("first")
    await centre.advance(1)
    second = await centre.login("second")
    await centre.join("Ann")
    await centre.advance(45)  # the first offer ends at 30 s; the second, made then, runs to 60 s
    assert first.last("offer_withdrawn")["reason"] == "timeout"
    assert second.of_type("offer_withdrawn") == []
    assert second.last("offer")["customer"]["name"] == "Ann"
    await centre.advance(15)
    assert second.last("offer_withdrawn")["reason"] == "timeout"


async def test_declined_offer_goes_to_the_next_agent(centre: Centre) -> None:
    sam = await centre.login("sam")
    await centre.advance(1)
    lea = await centre.login("lea")
    await centre.join("Ann")
    offer = sam.last("offer")
    await centre.send(sam, {"type": "decline", "offer_id": offer["offer_id"]})
    assert sam.last("offer_withdrawn") == {
        "type": "offer_withdrawn",
        "offer_id": offer["offer_id"],
        "reason": "declined",
    }
    assert offered_names(lea) == ["Ann"]


async def test_an_agent_whose_offer_goes_is_told_their_status_again(centre: Centre) -> None:
    ann = await centre.join("Ann")
    sam = await centre.login("sam")  # available: Ann is offered at once, and Sam shows busy
    assert sam.last("agent_status")["status"] == "busy"
    await centre.send(ann, {"type": "leave"})
    assert sam.last("offer_withdrawn")["reason"] == "customer_left"
    assert sam.last("agent_status")["status"] == "available"


async def test_a_declining_agent_is_not_offered_the_same_customer_until_the_cool_off_ends(
    make_centre: Callable[..., Centre],
) -> None:
    centre = make_centre(decline_cooloff_s=60)
    sam = await centre.login("sam")
    ann = await centre.join("Ann")
    await centre.send(sam, {"type": "decline", "offer_id": sam.last("offer")["offer_id"]})
    assert ann.last("queue_status")["state"] == "waiting"
    await centre.advance(59)
    assert offered_names(sam) == ["Ann"]  # only the first offer
    await centre.advance(1.5)
    assert offered_names(sam) == ["Ann", "Ann"]


# ------------------------------------------------------ customers come back


async def test_a_dropped_tab_rejoins_by_ticket_within_the_grace_keeping_its_place(
    make_centre: Callable[..., Centre],
) -> None:
    centre = make_centre(rejoin_grace_s=60)
    ann = await centre.join("Ann")
    bob = await centre.join("Bob")
    ticket = bob.last("welcome")["ticket"]
    assert bob.last("queue_status")["position"] == 2
    await centre.close(bob)
    await centre.join("Cat")
    await centre.advance(59)
    bob2 = await centre.rejoin(ticket)
    assert bob2.last("welcome")["rejoined"] is True
    assert bob2.last("transcript")["messages"] == []
    assert bob2.last("queue_status")["position"] == 2
    await centre.send(ann, {"type": "leave"})
    assert bob2.last("queue_status")["position"] == 1
    await centre.advance(10)  # past the grace it no longer needed
    assert bob2.last("queue_status")["position"] == 1


async def test_a_tab_gone_past_the_grace_loses_its_place_and_is_counted_abandoned(
    make_centre: Callable[..., Centre],
) -> None:
    centre = make_centre(rejoin_grace_s=60)
    ann = await centre.join("Ann")
    bob = await centre.join("Bob")
    ticket = ann.last("welcome")["ticket"]
    await centre.close(ann)
    # A dropped customer is not counted ahead of Bob, but still holds a place in the queue.
    assert bob.last("queue_status")["position"] == 1
    await centre.advance(59.9)
    queue = centre.switchboard.status_report()["queues"][0]
    assert (queue["waiting"], queue["abandoned"]) == (2, 0)
    await centre.advance(0.2)
    status = centre.switchboard.status_report()
    assert status["queues"] == [
        {
            "queue": "general/any",
            "waiting": 1,
            "longest_wait_s": 60.1,
            "answered": 0,
            "abandoned": 1,
            "service_level": None,
        }
    ]
    again = await centre.rejoin(ticket)
    assert again.last("error")["code"] == "unknown_ticket"
    assert again.of_type("welcome") == []


async def test_rejoin_during_a_call_returns_to_the_call_with_its_transcript(centre: Centre) -> None:
    sam = await centre.login("sam")
    ann = await centre.join("Ann")
    ticket = ann.last("welcome")["ticket"]
    await centre.accept(sam)
    started = ann.last("call_started")
    await centre.send(ann, {"type": "chat", "text": "hello"})
    await centre.send(sam, {"type": "chat", "text": "hi Ann"})
    await centre.close(ann)
    assert sam.last("peer_status") == {
        "type": "peer_status",
        "call_id": started["call_id"],
        "status": "reconnecting",
    }
    await centre.advance(30)
    ann2 = await centre.rejoin(ticket)
    assert ann2.types() == ["welcome", "transcript", "call_started"]
    transcript = ann2.last("transcript")["messages"]
    assert [(m["from"], m["text"]) for m in transcript] == [("customer", "hello"), ("agent", "hi Ann")]
    assert ann2.last("call_started")["call_id"] == started["call_id"]
    assert sam.last("peer_status")["status"] == "connected"


async def test_a_second_tab_of_a_customer_is_refused_while_the_first_lives(centre: Centre) -> None:
    ann = await centre.join("Ann")
    key = ann.last("welcome")["customer_key"]
    second = centre.connect("Ann's second tab")
    await centre.send(second, {"type": "join", "name": "Ann", "customer_key": key})
    assert second.last("error")["code"] == "already_queued"
    await centre.close(ann)
    await centre.send(second, {"type": "join", "name": "Ann", "customer_key": key})
    assert second.last("welcome")["rejoined"] is True  # a crashed tab joining again keeps its place


# -------------------------------------------------------- agents come back


async def test_agent_reload_within_the_grace_keeps_the_call(make_centre: Callable[..., Centre]) -> None:
    centre = make_centre(agent_grace_s=15)
    sam = await centre.login("sam")
    ann = await centre.join("Ann")
    await centre.accept(sam)
    started = ann.last("call_started")
    await centre.close(sam)
    assert ann.last("peer_status")["status"] == "reconnecting"
    await centre.advance(14)
    sam2 = await centre.login("sam", available=False)
    assert [c["call_id"] for c in sam2.last("logged_in")["calls"]] == [started["call_id"]]
    assert ann.last("peer_status")["status"] == "connected"
    await centre.advance(60)  # long past the grace: nothing ends
    await centre.send(sam2, {"type": "chat", "text": "sorry, my page reloaded"})
    assert ann.last("chat")["text"] == "sorry, my page reloaded"
    assert ann.of_type("call_ended") == []


async def test_customer_goes_back_to_the_head_when_their_agent_does_not_come_back(
    make_centre: Callable[..., Centre],
) -> None:
    centre = make_centre(agent_grace_s=15)
    sam = await centre.login("sam")
    ann = await centre.join("Ann")
    await centre.accept(sam)
    bob = await centre.join("Bob")
    assert bob.last("queue_status")["position"] == 1
    await centre.close(sam)
    await centre.advance(14.9)
    assert ann.of_type("call_ended") == []
    await centre.advance(0.2)
    ended = ann.last("call_ended")
    assert ended["requeued"] is True and ended["reason"] == "agent_left"
    assert ann.last("queue_status") | {"expected_wait_s": None} == {
        "type": "queue_status",
        "state": "waiting",
        "position": 1,
        "expected_wait_s": None,
        "capacity": False,
    }
    assert bob.last("queue_status")["position"] == 2
    lea = await centre.login("lea")
    assert offered_names(lea) == ["Ann"]


async def test_a_newer_agent_tab_closes_the_older_one(centre: Centre) -> None:
    sam = await centre.login("sam")
    sam2 = await centre.login("sam")
    assert (sam.close_code, sam.close_reason) == (4001, "logged in from another tab")
    assert not sam2.closed
    await centre.join("Ann")
    assert offered_names(sam2) == ["Ann"] and sam.of_type("offer") == []


# ------------------------------------------------------------------ wrap-up


async def test_wrap_up_holds_offers_and_its_notes_reach_the_next_offer(
    make_centre: Callable[..., Centre],
) -> None:
    centre = make_centre(wrap_up_s=30)
    sam = await centre.login("sam")
    ann = await centre.join("Ann")
    key = ann.last("welcome")["customer_key"]
    await centre.accept(sam)
    call = sam.last("call_started")
    await centre.send(ann, {"type": "end_call"})
    assert ann.last("call_ended")["reason"] == "customer_hung_up"
    assert sam.last("call_ended")["wrap_up_s"] == 30
    assert sam.last("agent_status")["status"] == "wrap_up"
    await centre.join("Ann", customer_key=key)
    cat = await centre.join("Cat")
    # Sam's seat still counts while he wraps up: Cat is told a wait, not "unknown".
    assert cat.last("queue_status")["expected_wait_s"] is not None
    assert len(sam.of_type("offer")) == 1  # no offers during wrap-up
    await centre.send(sam, {"type": "wrap_up", "call_id": call["call_id"], "notes": "refund issued"})
    offer = sam.last("offer")
    assert offer["customer"]["name"] == "Ann"
    assert offer["history"]["notes"] == ["refund issued"] and offer["history"]["calls"] == 1


async def test_wrap_up_ends_by_itself_when_its_time_is_up(make_centre: Callable[..., Centre]) -> None:
    centre = make_centre(wrap_up_s=30)
    sam = await centre.login("sam")
    ann = await centre.join("Ann")
    await centre.accept(sam)
    await centre.send(sam, {"type": "end_call"})
    assert ann.last("call_ended")["reason"] == "agent_hung_up"
    await centre.advance(29.9)
    assert sam.last("agent_status")["status"] == "wrap_up"
    await centre.advance(0.2)
    assert sam.last("agent_status")["status"] == "available"
    await centre.join("Bob")
    assert offered_names(sam) == ["Ann", "Bob"]


async def test_a_customer_waiting_through_a_wrap_up_is_offered_when_it_ends(
    make_centre: Callable[..., Centre],
) -> None:
    centre = make_centre(wrap_up_s=30)
    sam = await centre.login("sam")
    ann = await centre.join("Ann")
    key = ann.last("welcome")["customer_key"]
    await centre.accept(sam)
    await centre.send(sam, {"type": "end_call"})
    await centre.join("Ann", customer_key=key)
    await centre.advance(29.9)
    assert offered_names(sam) == ["Ann"]
    mark = sam.mark()
    await centre.advance(0.2)
    assert [m["type"] for m in sam.since(mark)] == ["offer", "agent_status"]
    offer = sam.last("offer")
    assert offer["customer"]["name"] == "Ann" and offer["history"]["notes"] == []
    assert sam.last("agent_status")["status"] == "busy"  # an offer pending counts as busy


# ----------------------------------------------------------------- affinity


async def first_call_with(centre: Centre, agent: FakeConnection, name: str) -> str:
    """``name`` has a call with ``agent`` that the agent ends; their customer key."""
    customer = await centre.join(name)
    await centre.accept(agent)
    await centre.send(agent, {"type": "end_call"})
    customer.last("call_ended")
    return customer.last("welcome")["customer_key"]


async def test_returning_customer_chooses_to_wait_for_their_last_agent(
    make_centre: Callable[..., Centre],
) -> None:
    centre = make_centre(wrap_up_s=0, affinity_window_s=300)
    sam = await centre.login("sam")
    key = await first_call_with(centre, sam, "Ann")
    # Sam takes Bob; Ann comes back while Sam is busy, and Lea is free.
    lea = await centre.login("lea", available=False)
    bob = await centre.join("Bob")
    await centre.accept(sam)
    bob.last("call_started")
    await centre.send(lea, {"type": "set_status", "status": "available"})
    ann = await centre.join("Ann", customer_key=key)
    assert ann.last("welcome")["returning"] is True
    choice = ann.last("choice")
    assert choice["agent_name"] == "sam"
    assert choice["agent_wait_s"] > 0 and choice["any_wait_s"] == 0
    await centre.send(ann, {"type": "choose", "wait_for": "agent"})
    await centre.advance(200)
    assert lea.of_type("offer") == []  # held for Sam, not offered to Lea
    await centre.send(sam, {"type": "end_call"})
    returning = sam.last("offer")
    assert returning["customer"]["name"] == "Ann"
    assert returning["history"]["returning"] and returning["history"]["last_agent"] == "sam"


async def test_a_customer_held_for_their_agent_goes_to_anyone_when_the_window_closes(
    make_centre: Callable[..., Centre],
) -> None:
    centre = make_centre(wrap_up_s=0, affinity_window_s=300)
    sam = await centre.login("sam")
    key = await first_call_with(centre, sam, "Ann")
    await centre.join("Bob")
    await centre.accept(sam)
    lea = await centre.login("lea")
    ann = await centre.join("Ann", customer_key=key)
    await centre.send(ann, {"type": "choose", "wait_for": "agent"})
    await centre.advance(299)
    assert lea.of_type("offer") == []
    await centre.advance(2)
    assert offered_names(lea) == ["Ann"]


async def test_returning_customer_can_take_the_next_available_agent(
    make_centre: Callable[..., Centre],
) -> None:
    centre = make_centre(wrap_up_s=0)
    sam = await centre.login("sam")
    key = await first_call_with(centre, sam, "Ann")
    await centre.join("Bob")
    await centre.accept(sam)
    lea = await centre.login("lea")
    ann = await centre.join("Ann", customer_key=key)
    ann.last("choice")
    assert lea.of_type("offer") == []
    await centre.send(ann, {"type": "choose", "wait_for": "any"})
    assert offered_names(lea) == ["Ann"]


# --------------------------------------------------------------------- chat


async def test_chat_while_waiting_is_handed_to_the_agent_and_crosses_in_the_call(centre: Centre) -> None:
    ann = await centre.join("Ann")
    await centre.send(ann, {"type": "chat", "text": "my order never arrived"})
    echo = ann.last("chat")
    assert echo["from"] == "customer" and echo["text"] == "my order never arrived"
    assert echo["at"] == centre.clock.wall()
    sam = await centre.login("sam")
    offer = sam.last("offer")
    assert [m["text"] for m in offer["transcript"]] == ["my order never arrived"]
    await centre.accept(sam)
    assert [m["text"] for m in sam.last("call_started")["transcript"]] == ["my order never arrived"]
    await centre.send(sam, {"type": "chat", "text": "let me look"})
    assert ann.last("chat", **{"from": "agent"})["text"] == "let me look"
    await centre.send(ann, {"type": "chat", "text": "thanks"})
    to_agent = sam.last("chat", **{"from": "customer"})
    assert to_agent["text"] == "thanks" and to_agent["call_id"] == sam.last("call_started")["call_id"]


# --------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("raw", "code", "says"),
    [
        ("{not json", "bad_json", "not valid JSON"),
        ("[1, 2]", "bad_message", "JSON object"),
        ('{"name": "Ann"}', "bad_message", "type"),
        ('{"type": "teleport"}', "unknown_type", "teleport"),
        ('{"type": "join", "name": ""}', "invalid", "name"),
        ('{"type": "join", "name": 42}', "invalid", "name"),
        ('{"type": "join", "name": "Ann", "evil": true}', "invalid", "evil"),
        ('{"type": "join", "name": "Ann", "skill": "../../etc"}', "invalid", "skill"),
        ('{"type": "accept", "offer_id": "offer-1"}', "not_joined", "log in"),
        ('{"type": "webrtc_answer", "sdp": "v=0"}', "not_joined", "join"),
    ],
)
async def test_malformed_messages_get_a_clear_error_and_the_socket_stays(
    centre: Centre, raw, code, says
) -> None:
    client = centre.connect()
    await centre.send_raw(client, raw)
    error = client.last("error")
    assert error["code"] == code and says in error["message"]
    await centre.send(client, {"type": "ping"})
    assert client.received[-1] == {"type": "pong"} and not client.closed


async def test_out_of_order_messages_are_refused_and_the_call_carries_on(centre: Centre) -> None:
    sam = await centre.login("sam")
    ann = await centre.join("Ann")

    async def code_for(conn: FakeConnection, message: dict) -> str:
        await centre.send(conn, message)
        assert conn.received[-1]["type"] == "error", conn.received[-1]
        return conn.received[-1]["code"]

    assert await code_for(sam, {"type": "accept", "offer_id": "offer-9"}) == "no_such_offer"
    assert await code_for(sam, {"type": "end_call"}) == "out_of_order"
    assert await code_for(sam, {"type": "wrap_up", "call_id": "call-x"}) == "out_of_order"
    assert await code_for(ann, {"type": "webrtc_answer", "sdp": "v=0"}) == "out_of_order"
    assert await code_for(ann, {"type": "choose", "wait_for": "agent"}) == "out_of_order"
    assert await code_for(ann, {"type": "join", "name": "Ann"}) == "out_of_order"
    assert await code_for(ann, {"type": "end_call"}) == "out_of_order"
    await centre.accept(sam)
    ann.last("call_started")
    assert await code_for(ann, {"type": "webrtc_answer", "sdp": "v=0"}) == "out_of_order"
    assert await code_for(sam, {"type": "login", "token": centre.token("sam")}) == "out_of_order"
    await centre.send(ann, {"type": "chat", "text": "still here"})
    assert sam.last("chat")["text"] == "still here"


async def test_customer_can_never_act_as_an_agent_or_touch_another_call(centre: Centre) -> None:
    sam = await centre.login("sam")
    ann = await centre.join("Ann")
    offer = sam.last("offer")
    mallory = await centre.join("Mallory")
    for message in (
        {"type": "accept", "offer_id": offer["offer_id"]},
        {"type": "decline", "offer_id": offer["offer_id"]},
        {"type": "set_status", "status": "available"},
        {"type": "wrap_up", "call_id": "call-x"},
        {"type": "login", "token": mallory.last("welcome")["customer_key"]},
    ):
        await centre.send(mallory, message)
        assert mallory.received[-1]["code"] == "forbidden", message
    eve = centre.connect("eve")
    await centre.send(eve, {"type": "login", "token": ann.last("welcome")["customer_key"]})
    error = eve.last("error")
    assert error["code"] == "auth_failed" and "customer" in error["message"]
    await centre.accept(sam)  # Ann's offer is intact
    assert ann.last("call_started")["agent"] == {"name": "sam"}
    assert not [m for m in mallory.received if m["type"] in ("call_started", "chat", "offer")]


async def test_forged_and_expired_tokens_are_refused(centre: Centre) -> None:
    client = centre.connect()
    good = centre.token("sam", ttl=60)
    body, _, signature = good.partition(".")
    forged = body + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    await centre.send(client, {"type": "login", "token": forged})
    assert "signature" in client.last("error")["message"]
    await centre.send(client, {"type": "login", "token": "garbage"})
    assert "malformed" in client.last("error")["message"]
    await centre.advance(61)  # the token's hour is the centre's wall clock
    await centre.send(client, {"type": "login", "token": good})
    error = client.last("error")
    assert error["code"] == "auth_failed" and "expired" in error["message"]
    assert client.of_type("logged_in") == []
    await centre.send(client, {"type": "login", "token": centre.token("sam")})
    assert client.last("logged_in")["name"] == "sam"


async def test_stop_closes_every_socket_with_1001_and_refuses_new_work(centre: Centre) -> None:
    sam = await centre.login("sam")
    ann = await centre.join("Ann")
    await centre.stop()
    assert (sam.close_code, ann.close_code) == (1001, 1001)
    late = centre.connect("late")
    await centre.send(late, {"type": "join", "name": "Late"})
    assert late.last("error")["code"] == "shutting_down"


def test_the_fake_connection_sends_only_json_and_nothing_after_a_close() -> None:
    conn = FakeConnection("fake-x", "x")
    conn.send({"type": "pong"})
    with pytest.raises(TypeError):
        conn.send({"type": "bad", "value": object()})
    conn.close(4001, "gone")
    conn.close(1000, "again")
    conn.send({"type": "pong"})
    assert conn.received == [{"type": "pong"}] and (conn.close_code, conn.close_reason) == (4001, "gone")
    assert json.loads(json.dumps(conn.received)) == conn.received


async def test_a_rejoin_with_a_ticket_that_is_not_ascii_is_an_unknown_ticket(centre: Centre) -> None:
    await centre.join("Ann")
    stranger = centre.connect("stranger")
    await centre.send(stranger, {"type": "rejoin", "ticket": "Z*\u00db\u2603"})
    assert stranger.last("error")["code"] == "unknown_ticket"
