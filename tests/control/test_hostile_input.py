"""Regression tests for hostile input that once reached `internal` or grew the server's state.

Each test names the input it was found with; the rule behind them: no client input
reaches `internal`, label values in /metrics come from fixed sets, and a queue nobody
configured exists only while someone waits in it.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
import websockets

from telepresence.protocol import BROWSER_STATS
from tests.conftest import Client, join, login, run_server


async def error_for(client: Client, raw: str | bytes) -> dict:
    await client.ws.send(raw)
    return await client.expect("error")


async def still_serves(client: Client) -> None:
    await client.send("ping")
    await client.expect("pong")


async def test_json_nested_past_the_recursion_limit_is_bad_json(connect):
    client = await connect()
    error = await error_for(client, "[" * 10_000 + "]" * 10_000)
    assert error["code"] == "bad_json" and "deeply" in error["message"]
    await still_serves(client)


@pytest.mark.parametrize("token", ["é.x", "abc.é", "é", "a.b.ü", "\u2028.\u2028"])
async def test_a_token_with_non_ascii_characters_is_auth_failed(connect, token):
    client = await connect()
    await client.send("login", token=token)
    error = await client.expect("error")
    assert error["code"] == "auth_failed" and "malformed" in error["message"]
    await still_serves(client)


async def test_a_non_ascii_bearer_token_on_the_host_api_is_401(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        # Sent as UTF-8 bytes, as a careless client would; Starlette decodes headers as latin-1.
        for token in ("é.x", "abc.é", "ÿ" * 3000):
            response = await http.get("/api/host", headers={"Authorization": f"Bearer {token}".encode()})
            assert response.status_code == 401, (token[:10], response.text)
            assert response.json()["code"] == "auth_failed"


@pytest.mark.parametrize("key", ["é.x", "abc.é", "é", "eyJ.é"])
async def test_a_damaged_non_ascii_customer_key_joins_as_a_new_customer(connect, key):
    customer = await join(connect, "Ann", customer_key=key)
    status = await customer.expect("queue_status")
    assert status["state"] == "waiting" and status["position"] == 1


@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "ping"}'.encode("utf-16"),
        '{"type": "ping"}'.encode("utf-16-le"),
        '{"type": "ping"}'.encode("utf-32"),
        b'{"type": "join", "name": "\xe9"}',  # latin-1, not UTF-8
    ],
)
async def test_binary_frames_must_be_utf8(connect, raw):
    client = await connect()
    assert (await error_for(client, raw))["code"] == "bad_json"
    await client.ws.send(b'{"type": "ping"}')  # UTF-8 binary frames are still read
    await client.expect("pong")


async def test_a_lone_surrogate_escape_is_bad_json_and_a_pair_is_fine(connect):
    client = await connect()
    error = await error_for(client, '{"type": "join", "name": "\\ud800"}')
    assert error["code"] == "bad_json" and "surrogate" in error["message"]
    await client.ws.send('{"type": "join", "name": "\\ud83d\\ude00"}')
    assert (await client.expect("welcome"))["queue"] == "general/any"


async def test_media_stats_names_come_from_a_fixed_set(server, connect):
    """A name outside the browser figures is refused, so it never becomes a metric label."""
    customer = await join(connect, "Ann")
    agent = await login(connect, server, "sam")
    offer = await agent.expect("offer")
    await agent.send("accept", offer_id=offer["offer_id"])
    await customer.expect("call_started")
    await customer.send("media_stats", stats={"made_up_figure": 1.0})
    error = await customer.expect("error")
    assert error["code"] == "invalid" and "made_up_figure" in error["message"]
    await customer.send("media_stats", stats=dict.fromkeys(BROWSER_STATS, 1.0))
    await still_serves(customer)
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert "made_up_figure" not in (await http.get("/metrics")).text


async def queue_labels(server) -> tuple[set[str], set[str]]:
    """The queues named in /api/status, and those in /metrics' waiting gauge."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        status = (await http.get("/api/status")).json()
        metrics = (await http.get("/metrics")).text
    in_status = {q["queue"] for q in status["queues"]}
    in_metrics = set(re.findall(r'telepresence_queue_waiting\{queue="([^"]+)"\}', metrics))
    return in_status, in_metrics


async def test_a_queue_nobody_named_is_gone_with_its_last_customer(server, connect):
    named = await login(connect, server, "sam", skills=("billing",), available=False)
    customers = []
    for index in range(5):
        customer = await join(connect, f"c{index}", skill=f"made-up-{index}")
        customers.append(customer)
    billing = await join(connect, "Bo", skill="billing")
    in_status, in_metrics = await queue_labels(server)
    assert {f"made-up-{i}/any" for i in range(5)} <= in_status
    assert {f"made-up-{i}/any" for i in range(5)} <= in_metrics
    for customer in [*customers, billing]:
        await customer.send("leave")
        await customer.expect("left")
    in_status, in_metrics = await queue_labels(server)
    assert in_status == in_metrics == {"billing/any"}, "only the queue an agent's token names stands"
    async with httpx.AsyncClient(base_url=server.url) as http:
        metrics = (await http.get("/metrics")).text
    assert 'telepresence_abandoned_total{queue="other"} 5.0' in metrics
    assert 'telepresence_abandoned_total{queue="billing/any"} 1.0' in metrics
    await still_serves(named)


async def test_a_centre_that_lists_its_skills_refuses_other_queues(tmp_path):
    async with run_server(tmp_path, skills="billing, Tech", languages="en,fr") as server:

        async def client() -> Client:
            return Client(await websockets.connect(server.ws_url), "c")

        ann = await client()
        await ann.send("join", name="Ann", skill="sales")
        error = await ann.expect("error")
        assert error["code"] == "unknown_queue" and "sales" in error["message"]
        await ann.send("join", name="Ann", skill="billing", language="de")
        assert (await ann.expect("error"))["code"] == "unknown_queue"
        await ann.send("join", name="Ann", skill="tech", language="FR")
        assert (await ann.expect("welcome"))["queue"] == "tech/fr"
        # A skill in a logged-in agent's token is served too.
        agent = await client()
        await agent.send("login", token=server.token("sam", skills=("sales",)))
        await agent.expect("logged_in")
        bo = await client()
        await bo.send("join", name="Bo", skill="sales")
        assert (await bo.expect("welcome"))["queue"] == "sales/any"
        for socket in (ann, agent, bo):
            await socket.close()


def test_a_bad_label_in_the_skills_setting_is_a_clear_error(tmp_path):
    from telepresence.config import Settings

    with pytest.raises(ValueError, match="setting skills: 'a b'"):
        Settings.load(env={"TELEPRESENCE_SKILLS": "billing,a b"}, state_dir=tmp_path)
    with pytest.raises(ValueError, match="setting snapshot_every_steps: 0 is below 1"):
        Settings.load(env={"TELEPRESENCE_SNAPSHOT_EVERY_STEPS": "0"}, state_dir=tmp_path)


async def test_metrics_stay_bounded_whatever_labels_clients_send(server, connect):
    async with httpx.AsyncClient(base_url=server.url) as http:
        before = len((await http.get("/metrics")).text)
        for index in range(60):
            client = await join(connect, "x", skill=f"s{index}", language=f"l{index}")
            await client.send("leave")
            await client.expect("left")
            await client.ws.send(json.dumps({"type": f"junk-{index}"}))
            await client.expect("error")
        after = len((await http.get("/metrics")).text)
    assert after - before < 2_000, f"/metrics grew from {before} to {after} bytes"
