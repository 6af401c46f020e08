"""The live avatar host: operator control (WebSocket and HTTP), studio face driving, handover in calls."""

from __future__ import annotations

import asyncio
import fractions

import av
import httpx
import numpy as np
import pytest
import websockets
from aiortc.mediastreams import MediaStreamTrack
from skimage import data

from media.browser import BrowserPeer, ToneTrack
from media.layout import AGENT, SIZES, Rect, compute_layout
from media.sources import TestCardTrack
from tests.calls.test_media_calls import RED, media_server, open_call, red_band, signalling, wait_for
from tests.conftest import Client

FULL = compute_layout(SIZES["360p"], "agent", {AGENT})[0].content
# The red test card's band spans the whole width; the avatar's (orange) outfit only the middle,
# its backdrop is deep blue: the bottom-left corner tells the two apart.
CORNER = Rect(0, 0, 64, FULL.height)


class FaceCamera(MediaStreamTrack):
    """An operator's camera: a real face (scikit-image's astronaut), 15 fps."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        rgb = np.ascontiguousarray(data.astronaut()[:, :, :3])
        self._frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        self._count = 0

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(1 / 15)
        frame = self._frame.reformat(format="yuv420p")
        frame.pts = self._count * 6000
        frame.time_base = fractions.Fraction(1, 90000)
        self._count += 1
        return frame


async def operator_client(server, name: str = "olga") -> Client:
    client = Client(await websockets.connect(server.ws_url), name)
    await client.send("login", token=server.token(name, role="operator"))
    assert (await client.expect("logged_in"))["role"] == "operator"
    assert (await client.expect("host_status"))["running"] is False
    return client


async def test_operator_controls_the_host_and_bad_commands_get_clear_errors(tmp_path):
    async with media_server(tmp_path) as server:
        olga = await operator_client(server)
        await olga.send("host_start", spec="aurora")
        status = await olga.expect("host_status", running=True)
        assert status["spec"] == "aurora"
        await olga.send("host_start", spec="harbor")
        assert (await olga.expect("error"))["code"] == "out_of_order"

        await olga.send("host_command", command="say Welcome to Acme")
        started = await olga.expect("host_event", kind="started_talking")
        assert started["text"] == "Welcome to Acme"
        await olga.expect("host_event", kind="stopped_talking", timeout=15)
        await olga.send("host_command", command="dance wildly")
        assert (await olga.expect("error"))["code"] == "invalid_command"
        await olga.send("host_script", text="say Hello\nexpression smile\nteleport home\n")
        error = await olga.expect("error")
        assert error["code"] == "invalid_command" and "3" in error["message"]

        await olga.send("host_look", spec="../../etc/passwd")
        assert (await olga.expect("error"))["code"] == "invalid"  # not even a look name
        await olga.send("host_look", spec="nosuchlook")
        assert (await olga.expect("error"))["code"] == "invalid_spec"
        await olga.send("host_look", spec_text="[colors]\nskin = 'not a colour'\n")
        assert (await olga.expect("error"))["code"] == "invalid_spec"
        await olga.send("host_look", spec="harbor")
        assert (await olga.expect("host_status", spec="harbor"))["running"] is True

        # Nobody else may drive the host.
        customer = Client(await websockets.connect(server.ws_url), "Ann")
        await customer.send("join", name="Ann")
        await customer.expect("welcome")
        await customer.send("host_command", command="say I am the host now")
        assert (await customer.expect("error"))["code"] == "forbidden"
        agent = Client(await websockets.connect(server.ws_url), "sam")
        await agent.send("login", token=server.token("sam"))
        await agent.expect("logged_in")
        await agent.send("host_stop")
        assert (await agent.expect("error"))["code"] == "forbidden"
        anonymous = Client(await websockets.connect(server.ws_url), "anon")
        await anonymous.send("host_interrupt")
        assert (await anonymous.expect("error"))["code"] == "not_joined"

        await olga.send("host_stop")
        assert (await olga.expect("host_status", running=False))["running"] is False


async def test_http_control_api_needs_an_operator_token(tmp_path):
    async with media_server(tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/api/host")).status_code == 401
            agent = {"Authorization": f"Bearer {server.token('sam')}"}
            assert (
                await http.post("/api/host", headers=agent, json={"type": "host_start"})
            ).status_code == 401
            operator = {"Authorization": f"Bearer {server.token('olga', role='operator')}"}
            assert (await http.get("/api/host", headers=operator)).json() == {
                "type": "host_status",
                "running": False,
            }
            started = await http.post(
                "/api/host", headers=operator, json={"type": "host_start", "spec": "harbor"}
            )
            assert started.status_code == 200 and started.json()["spec"] == "harbor"
            said = await http.post(
                "/api/host", headers=operator, json={"type": "host_command", "command": "say Hi"}
            )
            assert said.status_code == 200
            bad = await http.post(
                "/api/host", headers=operator, json={"type": "host_command", "command": "fly"}
            )
            assert bad.status_code == 400 and bad.json()["code"] == "invalid_command"
            other = await http.post("/api/host", headers=operator, json={"type": "join", "name": "x"})
            assert other.status_code == 403
            assert (await http.post("/api/host", headers=operator, content=b"{nope")).status_code == 400
            huge = b'{"type": "host_script", "text": "' + b"x" * 100_000 + b'"}'
            assert (await http.post("/api/host", headers=operator, content=huge)).status_code == 413
            stopped = await http.post("/api/host", headers=operator, json={"type": "host_stop"})
            assert stopped.json() == {"type": "host_status", "running": False}


async def test_host_greets_the_call_and_hands_over_to_the_agent_without_a_black_frame(tmp_path):
    async with media_server(tmp_path) as server:
        olga = await operator_client(server)
        await olga.send("host_start", spec="aurora")
        await olga.expect("host_status", running=True)
        agent_ws, customer_ws, call_id = await open_call(server)
        agent = BrowserPeer.agent(camera=TestCardTrack(640, 360, fps=30, label="", tint=RED))
        customer = BrowserPeer.customer()
        async with agent, customer:
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            assert (await customer_ws.expect("layout"))["layout"] == "avatar"
            await customer.video(0).wait(15)
            sections = customer.transceiver_count()
            seen = customer.video(0).count
            await wait_for(lambda: customer.video(0).count > seen + 20)
            assert not red_band(customer.video(0).latest, CORNER)  # the avatar, not the agent's camera
            await olga.send("host_command", command="say Sam will be with you in a moment")
            await olga.send("host_handover")
            assert (await customer_ws.expect("layout", layout="agent"))["call_id"] == call_id
            await wait_for(lambda: red_band(customer.video(0).latest, CORNER))
            assert customer.transceiver_count() == sections
            assert customer.video(0).darkest_mean > 40
            # The agent can bring the avatar back beside a screen share, and hand over again.
            await agent_ws.send("set_layout", layout="avatar")
            await customer_ws.expect("layout", layout="avatar")
            await agent_ws.send("screen_share", active=True)
            await customer_ws.expect("layout", layout="avatar_screen")
            await olga.send("host_stop")
            await customer_ws.expect("layout", layout="screen")
            assert customer.video(0).darkest_mean > 40


async def test_the_studio_drives_the_avatar_with_the_operators_face_and_sees_a_preview(tmp_path):
    async with media_server(tmp_path) as server:
        olga = await operator_client(server)
        await olga.send("host_start", spec="aurora")
        await olga.expect("host_status", running=True)
        studio = BrowserPeer.operator(mic=ToneTrack(220), camera=FaceCamera())
        async with studio:
            await studio.negotiate(signalling(olga))
            preview = await studio.video(0).wait(15)
            assert (preview.width, preview.height) == (1280, 720)
            host = server.switchboard.host_control.desk.host
            await wait_for(lambda: host.face.tracking, timeout=20)
            seen = studio.video(0).count
            await wait_for(lambda: studio.video(0).count > seen + 10)
        await olga.send("host_stop")
        await olga.expect("host_status", running=False)


@pytest.mark.parametrize("sdp", ["not sdp", "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"])
async def test_bad_studio_offers_are_refused_and_the_host_carries_on(tmp_path, sdp):
    async with media_server(tmp_path) as server:
        olga = await operator_client(server)
        await olga.send("webrtc_offer", sdp=sdp)
        assert (await olga.expect("error"))["code"] == "out_of_order"  # no host yet
        await olga.send("host_start")
        await olga.expect("host_status", running=True)
        await olga.send("webrtc_offer", sdp=sdp)
        assert (await olga.expect("error"))["code"] in ("bad_sdp", "no_video")
        await olga.send("host_command", command="say still here")
        await olga.expect("host_event", kind="started_talking")


async def test_a_waiting_customer_is_greeted_with_their_place_and_the_call_grows_from_the_wait(tmp_path):
    async with media_server(tmp_path, greeter_look="aurora") as server:
        first = Client(await websockets.connect(server.ws_url), "Bob")
        await first.send("join", name="Bob")
        await first.expect("welcome")
        ann = Client(await websockets.connect(server.ws_url), "Ann")
        await ann.send("join", name="Ann")
        assert (await ann.expect("welcome"))["greeter"] is True
        customer = BrowserPeer.customer()
        async with customer:
            await customer.negotiate(signalling(ann))
            assert (await ann.expect("layout"))["layout"] == "avatar"
            await customer.video(0).wait(15)
            greeter = server.switchboard.customers[_customer_id(server, "Ann")].lobby.room.greeter
            await wait_for(lambda: "number 2" in (greeter.controller.caption_at(greeter.now()) or ""))
            await first.send("leave")  # Ann moves up: her greeter tells her
            await ann.expect("queue_status", position=1)
            await wait_for(lambda: "number 1" in (greeter.controller.caption_at(greeter.now()) or ""))

            agent_ws = Client(await websockets.connect(server.ws_url), "sam")
            await agent_ws.send("login", token=server.token("sam"))
            await agent_ws.expect("logged_in")
            await agent_ws.send("auto_answer", enabled=True)
            await agent_ws.send("set_status", status="available")
            await ann.expect("call_started")
            sections = customer.transceiver_count()
            agent = BrowserPeer.agent(camera=TestCardTrack(640, 360, fps=30, label="", tint=RED))
            async with agent:
                await agent.negotiate(signalling(agent_ws))
                # The avatar hands over by itself once the agent's media is up.
                await ann.expect("layout", layout="agent", timeout=15)
                await wait_for(lambda: red_band(customer.video(0).latest, CORNER))
            assert customer.transceiver_count() == sections
            assert len([m for m in ann.received if m["type"] == "webrtc_answer"]) == 1
            assert customer.video(0).darkest_mean > 40


def _customer_id(server, name: str) -> str:
    return next(c.customer_id for c in server.switchboard.customers.values() if c.name == name)


async def test_every_operator_hears_the_host_and_the_studio_answer_goes_to_its_sender(tmp_path):
    async with media_server(tmp_path) as server:
        olga = await operator_client(server, "olga")
        pia = await operator_client(server, "pia")
        await olga.send("host_start", spec="aurora")
        await olga.expect("host_status", running=True)
        assert (await pia.expect("host_status", running=True))["spec"] == "aurora"
        await olga.send("host_command", command="say Hello")
        await pia.expect("host_event", kind="started_talking")
        studio = BrowserPeer.operator(camera=FaceCamera())
        async with studio:
            await studio.negotiate(signalling(pia))  # pia takes over the driving
            await studio.video(0).wait(15)
        assert not [m for m in olga.received if m["type"] == "webrtc_answer"]
        await pia.send("host_look", spec="harbor")
        assert (await olga.expect("host_status", spec="harbor"))["viewers"] == 0


async def test_shutdown_closes_a_waiting_customers_greeter(tmp_path):
    async with media_server(tmp_path, greeter_look="aurora") as server:
        ann = Client(await websockets.connect(server.ws_url), "Ann")
        await ann.send("join", name="Ann")
        await ann.expect("welcome")
        customer = BrowserPeer.customer()
        await customer.negotiate(signalling(ann))
        await customer.video(0).wait(15)
        session = server.switchboard.customers[_customer_id(server, "Ann")]
        room = session.lobby.room
    # The server has stopped: the greeter's room is closed, its peers with it.
    await wait_for(lambda: not room.peers and room.compositor.readyState == "ended", timeout=10)
    assert session.lobby is None
    await customer.close()
