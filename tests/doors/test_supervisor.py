"""Supervisors on live calls (``POST /whep/call/{id}``): a supervisor sees what the customer sees
and hears both voices, whispers to the agent alone, ends with the call; nobody else gets in.
Real uvicorn on loopback, aiortc peers; rooms here and in a media worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
import websockets

from media import aiortc_internals as internals
from media.browser import BrowserPeer, ToneTrack
from media.layout import AGENT, SIZES, compute_layout
from media.sources import TestCardTrack
from telepresence.auth import AuthError, TokenAuthority, load_or_create_secret
from tests.calls.test_media_calls import RED, media_server, open_call, red_band, signalling, wait_for
from tests.conftest import Client
from tests.doors.supervisor import supervisor_peer, with_ear
from tests.doors.whip import DoorRefused, WhipClient

FULL = compute_layout(SIZES["360p"], "agent", {AGENT})[0].content
AGENT_TONE, CUSTOMER_TONE, WHISPER_TONE, SECOND_WHISPER_TONE = 300, 500, 1000, 1500


def live(server) -> dict:
    return server.app.state.doors.doors["/whep/call/{call_id}"].taps.taps


@pytest.mark.parametrize("workers", [0, 1], ids=["room here", "room in a worker"])
async def test_a_supervisor_watches_hears_both_voices_and_whispers_to_the_agent_only(tmp_path, workers):
    async with media_server(tmp_path, media_workers=workers) as server:
        agent_ws, customer_ws, call_id = await open_call(server)
        agent = with_ear(
            BrowserPeer.agent(
                camera=TestCardTrack(640, 360, fps=15, label="", tint=RED), mic=ToneTrack(AGENT_TONE)
            )
        )
        customer = with_ear(BrowserPeer.customer(mic=ToneTrack(CUSTOMER_TONE)))
        supervisor = supervisor_peer(whisper=ToneTrack(WHISPER_TONE))
        door = WhipClient(server.url, f"/whep/call/{call_id}", server.token("sue", role="supervisor"))
        async with agent, customer, supervisor:
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            await wait_for(lambda: customer.video(0).latest is not None and customer.audio.hears(AGENT_TONE))
            await supervisor.negotiate(door.answer)
            assert door.location is not None and door.location.startswith(f"/whep/call/{call_id}/")
            # What the customer sees (the agent's red card, full frame), and both voices.
            await wait_for(
                lambda: supervisor.video(0).latest is not None and red_band(supervisor.video(0).latest, FULL),
                timeout=20,
            )
            await wait_for(
                lambda: supervisor.audio.hears(AGENT_TONE) and supervisor.audio.hears(CUSTOMER_TONE)
            )
            # The agent's console is told; the customer is not.
            told = await agent_ws.expect("supervisor", timeout=10)
            assert told["call_id"] == call_id and told["watching"] == 1
            # The whisper reaches the agent, mixed with the customer's voice, and never the customer.
            await wait_for(lambda: agent.audio.hears(WHISPER_TONE, frames=10), timeout=15)
            assert agent.audio.hears(CUSTOMER_TONE)
            assert (await agent_ws.expect("supervisor", timeout=10))["whispering"] is True
            heard_by_customer = customer.audio.frames
            await wait_for(lambda: customer.audio.frames > heard_by_customer + 50)  # another second
            assert customer.audio.heard[WHISPER_TONE] == 0
            assert not supervisor.audio.hears(WHISPER_TONE, frames=1)  # nor the supervisor, back
            assert not any(m["type"] == "supervisor" for m in customer_ws.received)
            # The supervisor's picture is the customer's encode, shared: no encode of its own.
            room = server.switchboard.calls[call_id].room
            if workers == 0:
                assert room.program.watched == 3  # customer, agent's preview, the supervisors' tap
                assert set(room.program.encoders) <= {room.codec.upper()}  # one encoder (or none: forwarding)

            assert await door.delete() == 200
            told = await agent_ws.expect("supervisor", timeout=10)
            assert told["watching"] == 0 and told["whispering"] is False
            await wait_for(lambda: not live(server))
            mixed = agent.audio.heard[WHISPER_TONE]
            await wait_for(lambda: customer.audio.frames > heard_by_customer + 100)
            assert agent.audio.heard[WHISPER_TONE] <= mixed + 5  # the whisper went with the session
            assert not server.app.state.doors.sessions
            if workers == 0:
                assert room.monitor_peer is None and room.program.watched == 2


async def test_with_two_supervisors_the_one_who_speaks_whispers(tmp_path):
    """Every watcher's page offers to whisper; the one whose microphone is on is heard, not
    whoever opened last, and the other is heard once the first has stopped."""
    async with media_server(tmp_path) as server:
        agent_ws, customer_ws, call_id = await open_call(server)
        agent = with_ear(
            BrowserPeer.agent(camera=TestCardTrack(640, 360, fps=15, label="", tint=RED), mic=ToneTrack())
        )
        customer = BrowserPeer.customer(mic=ToneTrack(CUSTOMER_TONE))
        first = supervisor_peer(whisper=ToneTrack(WHISPER_TONE))
        # As the page offers it: the whisper section sendrecv, the microphone off until held.
        second = BrowserPeer(
            "supervisor",
            [("video", None, "recvonly"), ("audio", None, "sendrecv"), ("audio", None, "recvonly")],
        )
        doors = [
            WhipClient(server.url, f"/whep/call/{call_id}", server.token(name, role="supervisor"))
            for name in ("sue", "sid")
        ]
        async with agent, customer, first, second:
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            await first.negotiate(doors[0].answer)
            await second.negotiate(doors[1].answer)
            assert (await agent_ws.expect("supervisor", timeout=10, watching=2))["call_id"] == call_id
            # A console opened meanwhile (the agent reloads: the new tab takes the session) is told.
            tab = Client(await websockets.connect(server.ws_url), "agent's reloaded console")
            await tab.send("login", token=server.token("agent-Ann"))
            await tab.expect("logged_in")
            told = await tab.expect("supervisor", timeout=5)
            assert (told["call_id"], told["watching"]) == (call_id, 2)
            await wait_for(lambda: agent.audio.hears(WHISPER_TONE, frames=10), timeout=15)

            # The second supervisor speaks while the first does: the first keeps the whisper.
            second_whisper = second.pc.getTransceivers()[1].sender
            second_whisper.replaceTrack(ToneTrack(SECOND_WHISPER_TONE))
            heard_first = agent.audio.heard[WHISPER_TONE]
            await wait_for(lambda: agent.audio.heard[WHISPER_TONE] > heard_first + 25)
            assert agent.audio.heard[SECOND_WHISPER_TONE] == 0
            # The first lets go: the second is heard.
            first.pc.getTransceivers()[1].sender.replaceTrack(None)
            await wait_for(lambda: agent.audio.hears(SECOND_WHISPER_TONE, frames=10), timeout=15)
            for door in doors:
                assert await door.delete() == 200
            await wait_for(lambda: not live(server))
            await tab.ws.close()


async def test_a_tap_closes_its_own_peer_even_when_the_rooms_worker_hangs(tmp_path):
    async with media_server(tmp_path, media_workers=1, shutdown_timeout_s=1) as server:
        agent_ws, customer_ws, call_id = await open_call(server)
        agent = BrowserPeer.agent(camera=TestCardTrack(640, 360, fps=15, label="", tint=RED), mic=ToneTrack())
        customer = BrowserPeer.customer(mic=ToneTrack(CUSTOMER_TONE))
        supervisor = supervisor_peer()
        door = WhipClient(server.url, f"/whep/call/{call_id}", server.token("sue", role="supervisor"))
        async with agent, customer, supervisor:
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            await supervisor.negotiate(door.answer)
            await wait_for(lambda: supervisor.video(0).latest is not None, timeout=20)
            tap = live(server)[call_id]
            assert internals.is_guarded(tap._pc)  # a stray datagram to its port must not end it
            pid = server.switchboard.media.pool.workers["media-0"].pid
            os.kill(pid, signal.SIGSTOP)  # the room's process answers nobody: no release comes
            try:
                assert await door.delete() == 200  # the session's undo is cut after 1 s
                assert tap.closed and not tap.connected  # the tap's own peer closed all the same
                assert not live(server)
            finally:
                os.kill(pid, signal.SIGCONT)


async def test_the_session_ends_when_the_call_ends(tmp_path):
    async with media_server(tmp_path) as server:
        agent_ws, customer_ws, call_id = await open_call(server)
        agent = BrowserPeer.agent(camera=TestCardTrack(640, 360, fps=15, label="", tint=RED), mic=ToneTrack())
        customer = BrowserPeer.customer(mic=ToneTrack(CUSTOMER_TONE))
        supervisor = supervisor_peer()
        door = WhipClient(server.url, f"/whep/call/{call_id}", server.token("sue", role="supervisor"))
        async with agent, customer, supervisor:
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            sending = BrowserPeer("x", [("video", TestCardTrack(320, 180, fps=5, label=""), "sendrecv")])
            async with sending:
                with pytest.raises(DoorRefused) as refused:
                    await sending.negotiate(door.answer)
            assert refused.value.status == 422  # its picture would queue up unread
            # Refused before its tap opened: the agent was never told of it.
            assert await agent_ws.latest("supervisor", settle=0.5) is None
            await supervisor.negotiate(door.answer)
            await wait_for(lambda: supervisor.video(0).latest is not None, timeout=20)
            async with httpx.AsyncClient(base_url=server.url) as http:
                listed = await http.get("/api/supervisor/calls", headers=door.headers())
            assert listed.status_code == 200
            assert [(c["call_id"], c["agent"], c["watching"]) for c in listed.json()["calls"]] == [
                (call_id, "agent-Ann", 1)
            ]

            await customer_ws.send("end_call")
            await wait_for(lambda: not server.app.state.doors.sessions, timeout=5)
            await wait_for(lambda: supervisor.pc.connectionState in ("closed", "failed"), timeout=10)
            assert not live(server)
            assert await door.delete() == 404  # it ended with the call
            with pytest.raises(DoorRefused) as refused:
                async with supervisor_peer() as late:
                    await late.negotiate(door.answer)
            assert refused.value.status == 404


async def test_only_a_supervisor_token_opens_a_call(tmp_path):
    async with media_server(tmp_path) as server:
        agent_ws, customer_ws, call_id = await open_call(server)
        path = f"/whep/call/{call_id}"
        key = server.app.state.authority.customer_key("cust-1")
        cases = {
            None: 401,
            "not-a-token": 401,
            key: 403,  # a customer's key
            server.token("agent-Ann"): 403,
            server.token("vic", role="viewer"): 403,
            server.token("olga", role="operator"): 403,
        }
        async with httpx.AsyncClient(base_url=server.url) as http:
            for token, status in cases.items():
                headers = {"Content-Type": "application/sdp"} | (
                    {"Authorization": f"Bearer {token}"} if token else {}
                )
                response = await http.post(path, content="v=0\r\n", headers=headers)
                assert response.status_code == status, (token, response.text)
                listed = await http.get("/api/supervisor/calls", headers=headers)
                assert listed.status_code == status, (token, listed.text)
                if token == "not-a-token":
                    assert listed.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
            preflight = await http.options("/api/supervisor/calls")
            assert preflight.status_code == 204
            assert "GET" in preflight.headers["Access-Control-Allow-Methods"]
            assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
            supervisor = {"Authorization": f"Bearer {server.token('sue', role='supervisor')}"}
            async with supervisor_peer() as peer:
                offer = await peer.offer()
            unknown = await http.post(
                "/whep/call/call-nope",
                content=offer,
                headers=supervisor | {"Content-Type": "application/sdp"},
            )
            assert unknown.status_code == 404, unknown.text
            early = await http.post(
                path, content=offer, headers=supervisor | {"Content-Type": "application/sdp"}
            )
            assert early.status_code == 409 and "Retry-After" in early.headers  # no media yet
            assert (await http.delete(f"{path}/nope", headers=supervisor)).status_code == 404
            assert (await http.get(path, headers=supervisor)).status_code == 405
        assert not server.app.state.doors.sessions


def test_the_token_command_mints_supervisors_who_log_in_nowhere(tmp_path):
    env = {**os.environ, "TELEPRESENCE_STATE_DIR": str(tmp_path)}
    env.pop("TELEPRESENCE_SECRET", None)
    printed = subprocess.run(
        [sys.executable, "-m", "telepresence", "token", "sue", "--role", "supervisor", "--ttl", "1h"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    token = printed.stdout.strip().splitlines()[-1]
    authority = TokenAuthority(load_or_create_secret(None, tmp_path / "secret"))
    claims = authority.verify(token, time.time(), roles=("supervisor",))
    assert (claims.name, claims.role) == ("sue", "supervisor")
    with pytest.raises(AuthError):
        authority.verify(token, time.time())  # the WebSocket's roles: agents and operators only
