"""WHIP in (RFC 9725) as an agent's camera: an agent's encoder replaces their browser's camera and
microphone in their calls, in a room of this process or of a media worker; after DELETE, or a
publisher killed without one, the browser's camera is back. No browser renegotiates."""

from __future__ import annotations

import asyncio
import sys

import pytest

from media import aiortc_internals as internals
from media.browser import BrowserPeer, ToneTrack
from media.layout import AGENT, SIZES, compute_layout
from media.planes import frame_planes
from media.sources import TestCardTrack
from tests.calls.test_media_calls import RED, media_server, open_call, red_band, signalling, wait_for
from tests.doors.whip import DoorRefused, WhipClient, only_codecs, publisher

BLUE = (0, 0, 220)
FULL = compute_layout(SIZES["360p"], "agent", {AGENT})[0].content


def blue_band(frame, rect) -> bool:
    """The lower band of a blue test card: strong U chroma."""
    _, u, _ = frame_planes(frame)
    cx, cy = (rect.x + rect.width // 2) // 2, (rect.y + rect.height * 7 // 8) // 2
    return float(u[cy - 2 : cy + 2, cx - 2 : cx + 2].mean()) > 170


def card(tint) -> TestCardTrack:
    return TestCardTrack(640, 360, fps=30, label="", tint=tint)


@pytest.mark.parametrize(
    ("workers", "codec"), [(0, "VP8"), (1, "H264")], ids=["room here, VP8", "room in a worker, H264"]
)
async def test_the_agents_whip_camera_replaces_the_browsers_until_deleted(tmp_path, workers, codec):
    async with media_server(tmp_path, media_workers=workers) as server:
        agent_ws, customer_ws, call_id = await open_call(server)
        agent = BrowserPeer.agent(camera=card(RED), mic=ToneTrack(440))
        customer = BrowserPeer.customer()
        whip = WhipClient(server.url, "/whip/agent", server.token("agent-Ann"))
        async with agent, customer, publisher(camera=card(BLUE), mic=ToneTrack(660)) as encoder:
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            await wait_for(
                lambda: customer.video(0).latest is not None and red_band(customer.video(0).latest, FULL)
            )
            room = server.switchboard.calls[call_id].room
            assert room.worker == ("" if workers == 0 else room.worker) and (workers == 0) == (
                room.worker == ""
            )
            sections = customer.transceiver_count()

            only_codecs(encoder, codec)
            await encoder.negotiate(whip.answer)
            assert encoder.codec(0) == codec
            assert (await agent_ws.expect("camera_source", timeout=10))["source"] == "whip"
            await wait_for(lambda: blue_band(customer.video(0).latest, FULL), timeout=20)
            await wait_for(lambda: customer.audio.loudness() > 500)  # the encoder's voice

            assert await whip.delete() == 200
            assert (await agent_ws.expect("camera_source", timeout=10))["source"] == "browser"
            await wait_for(lambda: red_band(customer.video(0).latest, FULL), timeout=20)
            assert customer.transceiver_count() == sections
            assert len([m for m in customer_ws.received if m["type"] == "webrtc_answer"]) == 1
            assert len([m for m in agent_ws.received if m["type"] == "webrtc_answer"]) == 1
            assert customer.video(0).darkest_mean > 40  # never a black frame
            assert not server.app.state.doors.sessions


async def test_a_call_starting_while_the_agent_publishes_shows_whip_until_the_publisher_dies(tmp_path):
    async with media_server(tmp_path, media_door_idle_s=3) as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.doors.publisher_process",
            server.url,
            "/whip/agent",
            server.token("agent-Ann"),
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert (await asyncio.wait_for(process.stdout.readline(), 30)).strip() == b"connected"
            agent_ws, customer_ws, call_id = await open_call(server)
            # The console opened while the agent publishes is told so (not only at the start).
            assert (await agent_ws.expect("camera_source", timeout=10))["source"] == "whip"
            agent = BrowserPeer.agent(camera=card(RED))
            customer = BrowserPeer.customer()
            async with agent, customer:
                await agent.negotiate(signalling(agent_ws))
                await customer.negotiate(signalling(customer_ws))
                await customer.video(0).wait(15)
                feed = server.switchboard.media.agent_cameras.feeds["agent-Ann"]
                await wait_for(lambda: call_id in feed.hops)
                assert internals.is_guarded(feed.hops[call_id][0])  # its port is open to anyone
                seen = customer.video(0).count
                await wait_for(lambda: customer.video(0).count > seen + 30)
                assert not red_band(customer.video(0).latest, FULL)  # the publisher's card
                process.kill()
                await process.wait()
                await wait_for(lambda: red_band(customer.video(0).latest, FULL), timeout=20)
                assert not server.app.state.doors.sessions
                assert "agent-Ann" not in server.switchboard.media.agent_cameras.feeds
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_agent_door_errors(tmp_path):
    async with media_server(tmp_path) as server:
        async with BrowserPeer("whep", [("video", None, "recvonly")]) as silent:
            for token, status in ((None, 401), (server.token("olga", role="operator"), 403)):
                client = WhipClient(server.url, "/whip/agent", token)
                response = await _refused(client, await silent.offer())
                assert response == status
            client = WhipClient(server.url, "/whip/agent", server.token("sam"))
            assert await _refused(client, silent.pc.localDescription.sdp) == 422


async def _refused(client: WhipClient, offer: str) -> int:
    try:
        await client.answer("whip", offer)
    except DoorRefused as refused:
        return refused.status
    return 201


async def test_two_publishers_of_one_agent_arriving_together_leave_one_camera_showing(tmp_path):
    """An agent already publishing, and two more sessions of theirs POSTed at once (an encoder
    retrying): the older ones end, and the call shows the encoder whose session lives, not the
    browser's camera given back by a replaced session on its way out."""
    async with media_server(tmp_path) as server:
        agent_ws, customer_ws, _call_id = await open_call(server)
        token = server.token("agent-Ann")
        agent = BrowserPeer.agent(camera=card(RED))
        customer = BrowserPeer.customer()
        first, second, third = (publisher(camera=card(BLUE)) for _ in range(3))
        async with agent, customer, first, second, third:
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            await customer.video(0).wait(15)
            await first.negotiate(WhipClient(server.url, "/whip/agent", token).answer)
            await wait_for(lambda: blue_band(customer.video(0).latest, FULL), timeout=20)
            clients = [WhipClient(server.url, "/whip/agent", token) for _ in range(2)]
            await asyncio.gather(second.negotiate(clients[0].answer), third.negotiate(clients[1].answer))
            doors = server.app.state.doors
            await wait_for(lambda: len(doors.sessions) == 1, timeout=10)
            (survivor,) = doors.sessions.values()
            assert survivor.opened.alive()
            seen = customer.video(0).count
            await wait_for(lambda: customer.video(0).count > seen + 60, timeout=20)
            assert blue_band(customer.video(0).latest, FULL)  # the live session's encoder, not the browser
