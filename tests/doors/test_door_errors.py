"""The WHIP/WHEP HTTP layer (RFC 9725) every door shares: each error a client can cause, CORS,
the answer's form, limits, and sessions that end by DELETE or by their peer vanishing."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest
import websockets

from telepresence.auth import Claims
from tests.calls.test_media_calls import media_server, wait_for
from tests.conftest import TEST_SECRET, Client
from tests.doors.whip import DoorRefused, WhipClient, http_client, only_codecs, publisher, start_host, viewer

SDP = {"Content-Type": "application/sdp"}


async def test_methods_content_types_and_bad_offers_get_the_statuses_http_says(tmp_path):
    async with media_server(tmp_path) as server:
        await start_host(server)
        async with http_client(server) as http, viewer() as peer:
            offer = await peer.offer()
            preflight = await http.options("/whep/host")
            assert preflight.status_code == 204
            assert preflight.headers["access-control-allow-origin"] == "*"
            assert "POST" in preflight.headers["access-control-allow-methods"]
            assert "Authorization" in preflight.headers["access-control-allow-headers"]
            for method in ("GET", "PUT", "DELETE", "PATCH"):
                refused = await http.request(method, "/whep/host")
                assert refused.status_code == 405 and refused.headers["allow"] == "POST, OPTIONS"
            wrong_type = await http.post("/whep/host", content=offer, headers={"Content-Type": "text/plain"})
            assert wrong_type.status_code == 415
            assert (await http.post("/whep/host", json={"sdp": offer})).status_code == 415
            assert (await http.post("/whep/host", content="not sdp", headers=SDP)).status_code == 400
            assert (await http.post("/whep/host", content=b"\xff\xfe", headers=SDP)).status_code == 400
            broken = offer.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0 1 7")
            assert (await http.post("/whep/host", content=broken, headers=SDP)).status_code == 400
            huge = "v=0\r\n" + "a=x\r\n" * 20_000
            assert (await http.post("/whep/host", content=huge, headers=SDP)).status_code == 413
            assert (await http.delete("/whep/host/no-such-session")).status_code == 404
            assert (await http.post("/whip/nothing", content=offer, headers=SDP)).status_code == 404
            assert not server.app.state.doors.sessions  # nothing refused was kept


async def test_offers_with_nothing_usable_are_422(tmp_path):
    async with media_server(tmp_path) as server:
        await start_host(server)
        audio_only, vp9_only = viewer(video=False), viewer()
        async with audio_only, vp9_only:
            with pytest.raises(DoorRefused) as refused:
                await audio_only.negotiate(WhipClient(server.url, "/whep/host").answer)
            assert refused.value.status == 422
            only_codecs(vp9_only, "VP8")
            offer = (await vp9_only.offer()).replace("VP8/90000", "VP9/90000")
            with pytest.raises(DoorRefused) as refused:
                await WhipClient(server.url, "/whep/host").answer("whep", offer)
            assert refused.value.status == 422
        silent = viewer()  # a WHIP "publisher" that sends nothing
        async with silent:
            client = WhipClient(server.url, "/whip/studio", server.token("olga", role="operator"))
            with pytest.raises(DoorRefused) as refused:
                await silent.negotiate(client.answer)
            assert refused.value.status == 422 and "sends no video" in refused.value.response.text
        assert not server.app.state.doors.sessions


async def test_tokens_401_403_and_the_viewer_role(tmp_path):
    async with media_server(tmp_path, whep_viewer_token_required=True) as server:
        await start_host(server)
        expired = server.authority.mint(Claims(name="v", role="viewer", expires_at=time.time() - 1))
        forged = server.token("olga", role="operator")[:-3] + "abc"
        cases = [
            ("/whip/studio", None, 401),
            ("/whip/studio", "not-a-token", 401),
            ("/whip/studio", forged, 401),
            ("/whip/studio", server.token("sam"), 403),  # an agent
            ("/whip/studio", server.token("vic", role="viewer"), 403),
            ("/whep/host", None, 401),
            ("/whep/host", expired, 401),
            ("/whep/host", server.authority.customer_key("cust-1"), 403),  # a customer's key
            ("/whep/host", server.token("sam"), 403),
        ]
        async with viewer() as peer:
            offer = await peer.offer()
            for path, token, status in cases:
                with pytest.raises(DoorRefused) as refused:
                    await WhipClient(server.url, path, token).answer("x", offer)
                assert refused.value.status == status, (path, token)
                if status == 401:
                    assert refused.value.response.headers["www-authenticate"].startswith("Bearer")
        for token in (server.token("vic", role="viewer"), server.token("olga", role="operator")):
            async with viewer() as peer:
                client = WhipClient(server.url, "/whep/host", token)
                await peer.negotiate(client.answer)
                await peer.video(0).wait(15)
                assert await client.delete() == 200


async def test_the_answer_is_passive_complete_and_deleting_ends_the_session(tmp_path):
    async with media_server(tmp_path) as server:
        await start_host(server)
        async with viewer() as peer:
            client = WhipClient(server.url, "/whep/host")
            await peer.negotiate(client.answer)
            answer = client.response
            assert answer.status_code == 201 and answer.headers["content-type"] == "application/sdp"
            assert answer.headers["access-control-expose-headers"] == "Location, Link"
            assert "a=setup:passive" in answer.text and "a=setup:active" not in answer.text
            assert "a=candidate:" in answer.text  # gathered in full: no trickle needed
            assert "link" not in answer.headers  # no TURN configured
            doors = server.app.state.doors
            session = doors.sessions[client.location.rsplit("/", 1)[1]]
            await peer.video(0).wait(15)
            async with http_client(server) as http:
                assert (await http.patch(client.location, content="a=end-of-candidates")).status_code == 405
                assert (await http.get(client.location)).status_code == 405
                assert (await http.options(client.location)).headers["allow"] == "DELETE, OPTIONS"
                assert (
                    await http.delete(client.location.replace("/whep/host/", "/whip/studio/"))
                ).status_code == 404
            assert await client.delete() == 200
            assert not doors.sessions and session.pc.connectionState == "closed"
            assert await client.delete() == 404


async def test_turn_servers_come_as_link_headers(tmp_path):
    settings = {
        "turn_urls": "turn:127.0.0.1:3478?transport=udp",
        "turn_secret": "s3cret",
        "ice_gather_timeout_s": 0.3,
    }
    async with media_server(tmp_path, **settings) as server:
        await start_host(server)
        async with viewer() as peer:
            client = WhipClient(server.url, "/whep/host")
            await client.answer("whep", await peer.offer())
            links = client.response.headers.get_list("link")
            assert len(links) == 1
            link = links[0]
            assert link.startswith('<turn:127.0.0.1:3478?transport=udp>; rel="ice-server"; username="')
            assert 'credential="' in link and 'credential-type="password"' in link
            assert "s3cret" not in link
            assert await client.delete() == 200


async def test_sessions_per_token_and_in_all_are_limited(tmp_path):
    async with media_server(tmp_path, media_door_sessions_per_token=1, media_door_sessions_max=2) as server:
        await start_host(server)
        token = server.token("vic", role="viewer")
        first, second, third, fourth = viewer(), viewer(), viewer(), viewer()
        async with first, second, third, fourth:
            await first.negotiate(WhipClient(server.url, "/whep/host", token).answer)
            with pytest.raises(DoorRefused) as refused:
                await second.negotiate(WhipClient(server.url, "/whep/host", token).answer)
            assert refused.value.status == 429 and "retry-after" in refused.value.response.headers
            await third.negotiate(WhipClient(server.url, "/whep/host").answer)  # anonymous: no per-token cap
            with pytest.raises(DoorRefused) as refused:
                await fourth.negotiate(WhipClient(server.url, "/whep/host").answer)
            assert refused.value.status == 503
            assert len(server.app.state.doors.sessions) == 2


async def test_no_host_no_doors(tmp_path):
    async with media_server(tmp_path) as server:
        async with viewer() as peer:
            offer = await peer.offer()
            with pytest.raises(DoorRefused) as refused:
                await WhipClient(server.url, "/whep/host").answer("whep", offer)
            assert refused.value.status == 503 and "retry-after" in refused.value.response.headers
            studio = WhipClient(server.url, "/whip/studio", server.token("olga", role="operator"))
            with pytest.raises(DoorRefused) as refused:
                await studio.answer("whip", offer)
            assert refused.value.status == 409
        assert not server.app.state.doors.sessions


async def test_a_viewer_token_from_the_cli_opens_whep_and_nothing_else(tmp_path):
    env = {**os.environ, "TELEPRESENCE_SECRET": TEST_SECRET, "TELEPRESENCE_STATE_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "telepresence", "token", "vic", "--role", "viewer", "--ttl", "1h"]
    process = await asyncio.create_subprocess_exec(*command, env=env, stdout=asyncio.subprocess.PIPE)
    output, _ = await process.communicate()
    assert process.returncode == 0
    token = output.decode().strip().splitlines()[-1]
    async with media_server(tmp_path, whep_viewer_token_required=True) as server:
        await start_host(server)
        async with viewer() as peer:
            await peer.negotiate(WhipClient(server.url, "/whep/host", token).answer)
            await peer.video(0).wait(15)
        socket = Client(await websockets.connect(server.ws_url), "vic")
        await socket.send("login", token=token)
        assert (await socket.expect("error"))["code"] == "auth_failed"
        await socket.close()


async def test_only_the_token_that_opened_a_session_ends_it(tmp_path):
    """A session's id is not the only key: another token (of the same role and name, or a
    customer's) or none gets 404 / 401 and the session goes on; the opener's own token ends it."""
    async with media_server(tmp_path, whep_viewer_token_required=True) as server:
        await start_host(server)
        mine, same_name = server.token("vic", role="viewer"), server.token("vic", role="viewer", ttl=7200)
        assert mine != same_name
        async with viewer() as peer, http_client(server) as http:
            client = WhipClient(server.url, "/whep/host", mine)
            await peer.negotiate(client.answer)
            session_id = client.location.rsplit("/", 1)[1]
            others = [
                (same_name, 404),
                (server.token("olga", role="operator"), 404),
                (server.authority.customer_key("cust-1"), 404),
                (mine + "x", 404),
            ]
            for token, status in others:
                refused = await http.delete(client.location, headers={"Authorization": f"Bearer {token}"})
                assert refused.status_code == status, token
            anonymous = await http.delete(client.location)
            assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
            assert session_id in server.app.state.doors.sessions
            await peer.video(0).wait(15)  # still watching
            assert await client.delete() == 200
            assert session_id not in server.app.state.doors.sessions


async def test_closing_the_doors_awaits_sessions_already_ending(tmp_path):
    """A session leaves the book as its ending starts (a peer timed out, a DELETE): the doors'
    close() still waits until its peer is closed and the host's program let go."""
    async with media_server(tmp_path) as server:
        await start_host(server)
        doors = server.app.state.doors
        async with viewer() as peer:
            client = WhipClient(server.url, "/whep/host")
            await peer.negotiate(client.answer)
            session = doors.sessions[client.location.rsplit("/", 1)[1]]
            await peer.video(0).wait(15)
            ending = asyncio.create_task(doors.book.end(session, "a test"))
            for _ in range(10):  # a few turns of the loop: the ending starts, the session leaves
                if session.id not in doors.sessions:
                    break
                await asyncio.sleep(0)
            assert session.id not in doors.sessions and not ending.done()
            await doors.close()
            assert session.pc.connectionState == "closed"  # closed after its undo (the program let go)
            await ending


async def test_offers_arriving_together_cannot_pass_the_limits(tmp_path):
    """Ten POSTs of one token at once, with a cap of one: one session, nine 429s; an SDP of no
    media section is refused, not answered; nothing refused is kept."""
    async with media_server(tmp_path, media_door_sessions_per_token=1) as server:
        await start_host(server)
        token = server.token("vic", role="viewer")
        headers = {**SDP, "Authorization": f"Bearer {token}"}
        async with viewer() as peer, http_client(server) as http:
            offer = await peer.offer()
            responses = await asyncio.gather(
                *(http.post("/whep/host", content=offer, headers=headers) for _ in range(10))
            )
            statuses = sorted(response.status_code for response in responses)
            assert statuses == [201] + [429] * 9, statuses
            assert len(server.app.state.doors.sessions) == 1
            no_media = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
            refused = await http.post("/whep/host", content=no_media, headers=SDP)
            assert refused.status_code in (400, 422) and refused.text.strip(), refused.text
            location = next(r for r in responses if r.status_code == 201).headers["location"]
            assert (
                await http.delete(location, headers={"Authorization": f"Bearer {token}"})
            ).status_code == 200
            assert not server.app.state.doors.sessions


async def test_an_offer_that_takes_the_dtls_server_role_is_answered_active(tmp_path):
    """The server answers passive to the usual actpass; a client that offers passive (it will be
    the DTLS server) is answered active, not passive too (no side would start the handshake)."""
    async with media_server(tmp_path) as server:
        await start_host(server)
        async with viewer() as peer:
            client = WhipClient(server.url, "/whep/host")

            async def answer(role: str, sdp: str) -> str:
                return await client.answer(role, sdp.replace("a=setup:actpass", "a=setup:passive"))

            await peer.negotiate(answer)
            assert "a=setup:active" in client.response.text and "a=setup:passive" not in client.response.text
            await peer.video(0).wait(15)
            assert await client.delete() == 200


async def test_viewers_without_a_token_cannot_take_every_place(tmp_path):
    """An open /whep/host has no per-token cap: anonymous viewers fill only their own share, and
    an agent's encoder still gets in."""
    limits = {"media_door_sessions_max": 3, "media_door_anonymous_max": 2}
    async with media_server(tmp_path, **limits) as server:
        await start_host(server)
        first, second, third, camera = viewer(), viewer(), viewer(), publisher()
        async with first, second, third, camera:
            await first.negotiate(WhipClient(server.url, "/whep/host").answer)
            await second.negotiate(WhipClient(server.url, "/whep/host").answer)
            with pytest.raises(DoorRefused) as refused:
                await third.negotiate(WhipClient(server.url, "/whep/host").answer)
            assert refused.value.status == 503 and "retry-after" in refused.value.response.headers
            agent = WhipClient(server.url, "/whip/agent", server.token("sam"))
            await camera.negotiate(agent.answer)
            assert agent.response.status_code == 201
            assert len(server.app.state.doors.sessions) == 3


async def test_sessions_opened_and_deleted_over_and_over_leave_nothing_behind(tmp_path):
    """Thirty sessions opened and deleted at once (their peers never even connect): no session,
    task or listener of the host's voice is left, so a client looping on POST/DELETE grows nothing."""
    async with media_server(tmp_path) as server:
        host = await start_host(server)
        async with viewer() as peer, http_client(server) as http:
            offer = await peer.offer()
            # One session first: what the host starts for its first viewer (its program, the relay's
            # reader, paused again when unread) is not the sessions' to end.
            opened = await http.post("/whep/host", content=offer, headers=SDP)
            assert (await http.delete(opened.headers["location"])).status_code == 200
            await asyncio.sleep(0.5)
            tasks_before = len(asyncio.all_tasks())
            for _ in range(30):
                opened = await http.post("/whep/host", content=offer, headers=SDP)
                assert opened.status_code == 201
                assert (await http.delete(opened.headers["location"])).status_code == 200
            assert not server.app.state.doors.sessions
            assert host.voice.listeners == 0
            assert len(host._own) <= 1  # each program's proxy of the avatar, pruned once it ends
            await wait_for(lambda: len(asyncio.all_tasks()) <= tasks_before, timeout=10)
