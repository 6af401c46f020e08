"""Every kind of bad input gets a clear error or close code, and nobody else is affected."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.conftest import Client, join, login


async def error_for(client: Client, raw: str) -> dict:
    await client.ws.send(raw)
    return await client.expect("error")


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
async def test_malformed_messages_get_a_clear_error_and_the_socket_stays(connect, raw, code, says):
    client = await connect()
    error = await error_for(client, raw)
    assert error["code"] == code and says in error["message"]
    await client.send("ping")
    await client.expect("pong")


async def test_out_of_order_messages_are_refused(server, connect):
    sam = await login(connect, server, "sam")
    assert (await error_for(sam, json.dumps({"type": "accept", "offer_id": "offer-9"})))[
        "code"
    ] == "no_such_offer"
    assert (await error_for(sam, json.dumps({"type": "end_call"})))["code"] == "out_of_order"
    ann = await join(connect, "Ann")
    assert (await error_for(ann, json.dumps({"type": "webrtc_answer", "sdp": "v=0"})))[
        "code"
    ] == "out_of_order"
    assert (await error_for(ann, json.dumps({"type": "choose", "wait_for": "agent"})))[
        "code"
    ] == "out_of_order"
    assert (await error_for(ann, json.dumps({"type": "join", "name": "Ann"})))["code"] == "out_of_order"
    await sam.send("accept", offer_id=(await sam.expect("offer"))["offer_id"])
    await ann.expect("call_started")
    # An answer before any offer from the server is out of order, and the call carries on.
    assert (await error_for(ann, json.dumps({"type": "webrtc_answer", "sdp": "v=0"})))[
        "code"
    ] == "out_of_order"
    await ann.send("chat", text="still here")
    assert (await sam.expect("chat"))["text"] == "still here"


async def test_customer_can_never_act_as_an_agent_or_touch_another_call(server, connect):
    sam = await login(connect, server, "sam")
    ann = await join(connect, "Ann")
    offer = await sam.expect("offer")
    mallory = await join(connect, "Mallory")
    for message in (
        {"type": "accept", "offer_id": offer["offer_id"]},
        {"type": "decline", "offer_id": offer["offer_id"]},
        {"type": "set_status", "status": "available"},
        {"type": "wrap_up", "call_id": "call-x"},
    ):
        assert (await error_for(mallory, json.dumps(message)))["code"] == "forbidden"
    assert (await error_for(mallory, json.dumps({"type": "end_call"})))["code"] == "out_of_order"
    # A customer socket cannot log in as staff, and a customer key is not an agent token.
    login_message = {"type": "login", "token": mallory.received[0]["customer_key"]}
    assert (await error_for(mallory, json.dumps(login_message)))["code"] == "forbidden"
    eve = await connect("eve")
    error = await error_for(eve, json.dumps({"type": "login", "token": ann.received[0]["customer_key"]}))
    assert error["code"] == "auth_failed" and "customer" in error["message"]
    # Ann's offer is intact: Sam can still take it.
    await sam.send("accept", offer_id=offer["offer_id"])
    await ann.expect("call_started")
    assert not [m for m in mallory.received if m["type"] in ("call_started", "chat", "offer")]


async def test_forged_and_expired_tokens_are_refused(server, connect):
    client = await connect()
    good = server.token("sam")
    body, _, signature = good.partition(".")
    forged = body + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    assert "signature" in (await error_for(client, json.dumps({"type": "login", "token": forged})))["message"]
    assert (
        "malformed" in (await error_for(client, json.dumps({"type": "login", "token": "garbage"})))["message"]
    )
    expired = server.token("sam", ttl=-1)
    error = await error_for(client, json.dumps({"type": "login", "token": expired}))
    assert error["code"] == "auth_failed" and "expired" in error["message"]
    await client.send("login", token=good)
    assert (await client.expect("logged_in"))["name"] == "sam"


async def test_oversized_message_closes_with_1009_and_others_carry_on(server, connect):
    sam = await login(connect, server, "sam")
    ann = await join(connect, "Ann")
    big = await connect("big")
    await big.ws.send(json.dumps({"type": "chat", "text": "x" * (70 * 1024)}))
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(big.ws.recv(), 5)
    assert closed.value.rcvd.code == 1009
    offer = await sam.expect("offer")
    await sam.send("accept", offer_id=offer["offer_id"])
    await ann.expect("call_started")


async def test_flood_is_rate_limited_then_closed_with_1008(server, connect):
    ann = await join(connect, "Ann")
    flooder = await connect("flooder")
    for _ in range(300):
        try:
            await flooder.ws.send('{"type": "ping"}')
        except ConnectionClosed:
            break
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            flooder.received.append(json.loads(await asyncio.wait_for(flooder.ws.recv(), 5)))
    assert closed.value.rcvd.code == 1008
    assert any(m.get("code") == "rate_limited" for m in flooder.received)
    # The well-behaved customer's place and socket are untouched.
    await ann.send("ping")
    await ann.expect("pong")
    assert (await ann.expect("queue_status"))["position"] == 1


async def test_a_second_tab_of_the_same_customer_is_refused_while_the_first_lives(server, connect):
    ann = await join(connect, "Ann")
    twin = await connect("twin")
    await twin.send("join", name="Ann", customer_key=ann.received[0]["customer_key"])
    assert (await twin.expect("error"))["code"] == "already_queued"


async def test_forged_customer_key_is_a_new_customer_not_someone_else(server, connect):
    sam = await login(connect, server, "sam")
    ann = await join(connect, "Ann")
    await sam.send("accept", offer_id=(await sam.expect("offer"))["offer_id"])
    await sam.send("end_call")
    await ann.expect("call_ended")
    key = ann.received[0]["customer_key"]
    tampered = key[:-2] + ("AA" if not key.endswith("AA") else "BB")
    mallory = await connect("mallory")
    await mallory.send("join", name="Mallory", customer_key=tampered)
    assert (await mallory.expect("welcome"))["returning"] is False
    offer = await sam.expect("offer")
    assert offer["history"]["returning"] is False


async def test_server_survives_a_storm_of_junk_from_many_sockets(server, connect):
    ann = await join(connect, "Ann")
    junk = [
        "",
        "null",
        "{}",
        '{"type": null}',
        '{"type": "join"}',
        "\u0000",
        '{"type": "chat", "text": 5}',
        "9" * 1000,
    ]
    clients = [await connect(f"junk{i}") for i in range(10)]
    for client in clients:
        for raw in junk:
            await client.ws.send(raw)
    for client in clients:
        await client.send("ping")
        await client.expect("pong")
    sam = await login(connect, server, "sam")
    assert (await sam.expect("offer"))["customer"]["name"] == "Ann"
    await ann.send("ping")
    await ann.expect("pong")


async def test_shutdown_closes_sockets_with_1001(tmp_path):
    from tests.conftest import run_server

    async with run_server(tmp_path) as server:
        ws = await websockets.connect(server.ws_url)
        client = Client(ws, "ann")
        await client.send("join", name="Ann")
        await client.expect("welcome")
        names = {t.get_name() for t in asyncio.all_tasks()}
        assert "switchboard-timers" in names and any(n.endswith("-writer") for n in names)
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd.code in (1001, 1012)
    assert server.switchboard._timer is None
    left = {t.get_name() for t in asyncio.all_tasks()}
    assert "switchboard-timers" not in left and not any(n.endswith("-writer") for n in left)
