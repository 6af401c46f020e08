"""Whole calls through the real signalling server, with aiortc peers playing both browsers."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import websockets

from media.browser import BrowserPeer, ToneTrack
from media.layout import AGENT, SCREEN, SIZES, compute_layout
from media.planes import frame_planes
from media.sources import ScreenTrack, TestCardTrack
from media.stamp import read_stamp
from tests.conftest import Client, LiveServer, run_server

SIZE = SIZES["360p"]
RED = (200, 0, 0)


def red_band(frame, rect) -> bool:
    """The lower band of a red test card: strong V chroma."""
    _, _, v = frame_planes(frame)
    cx, cy = (rect.x + rect.width // 2) // 2, (rect.y + rect.height * 7 // 8) // 2
    return float(v[cy - 2 : cy + 2, cx - 2 : cx + 2].mean()) > 170


async def wait_for(predicate, timeout=15.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def signalling(client: Client):
    """An answer function for BrowserPeer.negotiate: offer over /ws, wait for the server's answer."""

    async def answer(role: str, sdp: str) -> str:
        await client.send("webrtc_offer", sdp=sdp)
        return (await client.expect("webrtc_answer", timeout=15))["sdp"]

    return answer


@contextlib.asynccontextmanager
async def media_server(tmp_path, **overrides):
    settings = {
        "video_size": "360p",
        "wrap_up_s": 0,
        "rejoin_grace_s": 0.3,
        "agent_grace_s": 0.3,
        "media_reconnect_s": 0.3,  # failed media ends the call soon after (no browser comes back here)
        **overrides,
    }
    async with run_server(tmp_path, **settings) as server:
        yield server


async def open_call(server: LiveServer, name: str = "Ann") -> tuple[Client, Client, str]:
    async def connect(label):
        return Client(await websockets.connect(server.ws_url, max_size=None), label)

    agent = await connect(f"agent of {name}")
    await agent.send("login", token=server.token(f"agent-{name}"))
    await agent.expect("logged_in")
    await agent.send("auto_answer", enabled=True)
    await agent.send("set_status", status="available")
    customer = await connect(name)
    await customer.send("join", name=name)
    started = await customer.expect("call_started")
    await agent.expect("call_started")
    return agent, customer, started["call_id"]


async def test_customer_sees_the_agent_and_the_screen_share_switches_the_layout(tmp_path):
    async with media_server(tmp_path) as server:
        agent_ws, customer_ws, call_id = await open_call(server)
        camera = TestCardTrack(640, 360, fps=30, stamp=True, label="", tint=RED)
        agent = BrowserPeer.agent(camera=camera, screen=ScreenTrack(640, 360, fps=5), mic=ToneTrack(440))
        customer = BrowserPeer.customer(mic=ToneTrack(880))
        async with agent, customer:
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            await customer.video(0).wait(15)
            full = compute_layout(SIZE, "agent", {AGENT})[0].content
            await wait_for(lambda: red_band(customer.video(0).latest, full))
            await wait_for(lambda: customer.audio.loudness() > 500)
            assert (await agent.video(0).wait(15)).width == 640  # the agent's preview of the composite
            call = server.switchboard.calls[call_id]
            assert call.state.value == "live"

            # Screen share: a layout change, no new offer, no black frame.
            sections = customer.transceiver_count()
            await agent_ws.send("screen_share", active=True)
            assert (await customer_ws.expect("layout"))["layout"] == "screen"
            assert (await customer_ws.expect("screen_share"))["active"] is True
            tiles = {t.name: t.content for t in compute_layout(SIZE, "screen", {AGENT, SCREEN})}
            await wait_for(lambda: frame_planes(customer.video(0).latest)[0][tiles[SCREEN].y + 60, 320] > 150)
            await wait_for(lambda: red_band(customer.video(0).latest, tiles[AGENT]))
            await agent_ws.send("set_layout", layout="agent")
            assert (await customer_ws.expect("layout", layout="agent"))["call_id"] == call_id
            seen = customer.video(0).count
            await wait_for(
                lambda: customer.video(0).count > seen + 15 and red_band(customer.video(0).latest, full)
            )
            assert customer.transceiver_count() == sections
            assert not [m for m in customer_ws.received if m["type"] == "webrtc_answer"][1:]
            assert customer.video(0).darkest_mean > 40

            # Frames flow agent -> server -> customer: the camera's stamp reads back on the customer side.
            ages = []
            for _ in range(30):
                seen = customer.video(0).count
                await wait_for(lambda seen=seen: customer.video(0).count > seen)
                stamp = read_stamp(customer.video(0).latest)
                if stamp is not None:
                    ages.append(stamp.age_ms())
            assert len(ages) >= 20
            ages.sort()
            print(
                f"\nglass-to-glass (loopback, 360p): p50 {ages[len(ages) // 2]:.1f} ms, max {ages[-1]:.1f} ms"
            )
            assert ages[len(ages) // 2] < 1000

            # The agent's console gets the live latency receipt, the customer's browser figures in it.
            await customer_ws.send("media_stats", stats={"jitter_buffer_ms": 12.5, "decode_ms": 1.5})
            receipt = await agent_ws.expect("receipt", timeout=10)
            while "customer_jitter_buffer_ms" not in receipt["stages"]:
                receipt = await agent_ws.expect("receipt", timeout=10)
            stages = receipt["stages"]
            assert stages["compose"]["p95"] > 0 and stages["encode"]["p95"] > 0
            assert stages["customer_jitter_buffer_ms"]["p50"] == 12.5


def media_tasks() -> set[str]:
    names = {t.get_name() for t in asyncio.all_tasks() if not t.done()}
    return {n for n in names if n.startswith(("drain", "audio pump")) or "close media" in n}


@pytest.mark.parametrize(
    "ending", ["agent_hangs_up", "customer_hangs_up", "customer_tab_closes", "agent_drops", "media_fails"]
)
async def test_every_way_a_call_ends_closes_its_peers_and_tasks(tmp_path, ending):
    async with media_server(tmp_path) as server:
        agent_ws, customer_ws, call_id = await open_call(server)
        agent = BrowserPeer.agent(camera=TestCardTrack(640, 360, fps=30), mic=ToneTrack(440))
        customer = BrowserPeer.customer(camera=TestCardTrack(320, 180, fps=15), mic=ToneTrack(880))
        async with agent, customer:
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            await customer.video(0).wait(15)
            await agent.video(2).wait(15)
            room = server.switchboard.calls[call_id].room
            assert room is not None and len(room.peers) == 2 and media_tasks()
            if ending == "agent_hangs_up":
                await agent_ws.send("end_call")
            elif ending == "customer_hangs_up":
                await customer_ws.send("end_call")
            elif ending == "customer_tab_closes":
                await customer_ws.close()
            elif ending == "agent_drops":
                await agent_ws.close()
            else:
                room.on_peer_state("customer", "failed")  # what aiortc reports when ICE or DTLS fails
            if ending != "customer_tab_closes":
                ended = await customer_ws.expect("call_ended", timeout=10)
                assert (
                    ended["reason"]
                    == {
                        "agent_hangs_up": "agent_hung_up",
                        "customer_hangs_up": "customer_hung_up",
                        "agent_drops": "agent_left",
                        "media_fails": "media_failed",
                    }[ending]
                )
            await wait_for(lambda: not media_tasks() and not room.peers, timeout=15)
            assert all(pc.connectionState == "closed" for pc in room.peers.values())
            assert room.compositor.readyState == "ended"
            assert call_id not in server.switchboard.calls or not server.switchboard.calls[call_id].active


async def test_bad_offers_get_an_error_and_neither_this_call_nor_another_is_hurt(tmp_path):
    async with media_server(tmp_path) as server:
        agent_ws, customer_ws, _ = await open_call(server, "Ann")
        other_agent_ws, other_ws, _ = await open_call(server, "Bob")
        await customer_ws.send("webrtc_offer", sdp="this is not SDP")
        assert (await customer_ws.expect("error"))["code"] == "bad_sdp"
        await customer_ws.send("webrtc_offer", sdp="v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n")
        assert (await customer_ws.expect("error"))["code"] == "no_video"
        audio_only = BrowserPeer.customer(video=False)
        async with audio_only:
            await customer_ws.send("webrtc_offer", sdp=await audio_only.offer())
            assert (await customer_ws.expect("error"))["code"] == "no_video"
        await customer_ws.send("webrtc_answer", sdp="v=0")
        assert (await customer_ws.expect("error"))["code"] == "out_of_order"
        await customer_ws.send("set_layout", layout="screen")
        assert (await customer_ws.expect("error"))["code"] == "forbidden"
        # This call still chats; the other call negotiates and plays.
        await customer_ws.send("chat", text="still here")
        assert (await agent_ws.expect("chat"))["text"] == "still here"
        agent = BrowserPeer.agent(camera=TestCardTrack(640, 360, fps=30))
        customer = BrowserPeer.customer()
        async with agent, customer:
            await agent.negotiate(signalling(other_agent_ws))
            await customer.negotiate(signalling(other_ws))
            await customer.video(0).wait(15)


async def test_a_customer_reload_renegotiates_into_the_same_call(tmp_path):
    async with media_server(tmp_path, rejoin_grace_s=10) as server:
        agent_ws, customer_ws, call_id = await open_call(server)
        ticket = customer_ws.received[0]["ticket"]
        agent = BrowserPeer.agent(
            camera=TestCardTrack(640, 360, fps=30, label="", tint=RED), mic=ToneTrack(440)
        )
        first = BrowserPeer.customer()
        async with agent:
            await agent.negotiate(signalling(agent_ws))
            async with first:
                await first.negotiate(signalling(customer_ws))
                await first.video(0).wait(15)
            await customer_ws.close()
            again = Client(await websockets.connect(server.ws_url), "Ann reloaded")
            await again.send("rejoin", ticket=ticket)
            assert (await again.expect("call_started"))["call_id"] == call_id
            second = BrowserPeer.customer()
            async with second:
                await second.negotiate(signalling(again))
                full = compute_layout(SIZE, "agent", {AGENT})[0].content
                await second.video(0).wait(15)
                await wait_for(lambda: red_band(second.video(0).latest, full))
                # The first connection's close stopped its outgoing tracks, not the new ones.
                await wait_for(lambda: second.audio.loudness() > 500)
            await again.close()
