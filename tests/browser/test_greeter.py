"""The greeter in real (Debian) Chromium: a waiting customer's media starts before any agent.

With a greeter look set, the customer page offers its media as soon as it is welcomed, and
shows the composite (the avatar reading the customer their place) in the waiting view. When an
agent takes the customer, the server carries that same connection into the call: the page
moves the same stream to the call view and never offers again, and the avatar hands over to
the agent's camera (a red test card, from a Python aiortc agent) with a layout change only.
"""

from __future__ import annotations

import contextlib
import json

import websockets
from playwright.async_api import Page, WebSocket, expect

from benchmarks.chrome import SCREENSHOTS, chromium, is_red, new_page, playing, sample, until_colours
from media.browser import BrowserPeer
from media.layout import SIZES
from media.sources import TestCardTrack
from tests.calls.test_media_calls import RED, signalling
from tests.conftest import Client, run_server

SIZE = SIZES["360p"]
SETTINGS = {"greeter_look": "aurora", "video_size": "360p", "wrap_up_s": 0, "offer_timeout_s": 30}
# The aurora look's backdrop is deep blue (#1d2b4a) with a vertical gradient: at the top it is
# 0.6 of its accent (#355a8c) and 0.4 of the deep blue.
AURORA_TOP = (43, 71, 114)
TOP_LEFT = [(12, 12), (40, 24), (24, 48)]
# The avatar's cheeks, either side of its nose (its face is in the middle, above the captions).
CHEEKS = [(SIZE.width // 2 - 32, SIZE.height // 2), (SIZE.width // 2 + 32, SIZE.height // 2)]
# The red test card's lower band spans the whole width; the avatar's backdrop is blue there.
LOWER_LEFT = (32, SIZE.height * 7 // 8)

TRACK_ID = "(video) => video.srcObject ? video.srcObject.getVideoTracks()[0].id : null"


def is_backdrop(rgb) -> bool:
    return all(abs(c - b) <= 22 for c, b in zip(rgb, AURORA_TOP, strict=True))


def is_skin(rgb) -> bool:
    r, g, b = rgb  # aurora's skin is #f1c7a5
    return r > 200 and 150 < g < 225 and 120 < b < 200 and r > g > b


def state(page: Page):
    return page.get_by_test_id("call-state")


def count_offers(page: Page) -> list[str]:
    """Every webrtc_offer the page sends, on any of its sockets (reconnections included)."""
    offers: list[str] = []

    def on_socket(ws: WebSocket) -> None:
        def on_frame(payload: str | bytes) -> None:
            try:
                message = json.loads(payload)
            except ValueError:
                return
            if message.get("type") == "webrtc_offer":
                offers.append(message["sdp"])

        ws.on("framesent", on_frame)

    page.on("websocket", on_socket)
    return offers


@contextlib.asynccontextmanager
async def greeter_server(tmp_path, **overrides):
    async with run_server(tmp_path, **{**SETTINGS, **overrides}) as server:
        yield server


async def test_the_greeter_plays_while_waiting_and_the_call_grows_from_the_same_connection(tmp_path):
    async with greeter_server(tmp_path) as server, chromium() as browser:
        page = await new_page(
            browser, permissions=["camera", "microphone"], viewport={"width": 390, "height": 844}
        )
        offers = count_offers(page)
        await page.goto(server.url + "/")
        await page.get_by_test_id("name-input").fill("Ann")
        await page.get_by_test_id("start-call").click()
        await expect(page.get_by_test_id("queue-position")).to_have_text("1")

        # While waiting: the greeter plays in the waiting view, at the server's size, showing the
        # avatar on its deep blue backdrop (not a black frame), with the avatar in the middle.
        await expect(page.get_by_test_id("greeter-media")).to_be_visible()
        await expect(state(page)).to_have_attribute("data-state", "waiting")
        probe = await playing(page, "greeter-video")
        assert (probe["width"], probe["height"]) == (SIZE.width, SIZE.height)
        await until_colours(page, "greeter-video", [(point, is_backdrop) for point in TOP_LEFT])
        cheeks = await sample(page, "greeter-video", CHEEKS)
        assert all(is_skin(rgb) for rgb in cheeks), cheeks  # the avatar's face, not the backdrop
        greeting_track = await page.get_by_test_id("greeter-video").evaluate(TRACK_ID)
        assert greeting_track
        await expect(page.get_by_test_id("media")).to_have_attribute("data-layout", "avatar")
        # Mute works while waiting; the leave button is there.
        mute = page.get_by_test_id("greeter-mute")
        await expect(mute).to_be_enabled()
        await mute.click()
        await expect(mute).to_have_attribute("aria-pressed", "true")
        await mute.click()
        await expect(mute).to_have_attribute("aria-pressed", "false")
        await expect(page.get_by_test_id("leave-queue")).to_be_enabled()
        assert len(offers) == 1
        await page.screenshot(path=str(SCREENSHOTS / "customer-greeter.png"), full_page=True)

        # An agent (a Python WebRTC peer with a red camera) takes the customer.
        sam = Client(await websockets.connect(server.ws_url, max_size=None), "sam")
        await sam.send("login", token=server.token("sam"))
        await sam.expect("logged_in")
        await sam.send("auto_answer", enabled=True)
        await sam.send("set_status", status="available")
        await sam.expect("call_started", timeout=10)
        await expect(state(page)).to_have_attribute("data-state", "in_call")
        await expect(page.get_by_test_id("greeter-media")).to_be_hidden()
        agent = BrowserPeer.agent(camera=TestCardTrack(SIZE.width, SIZE.height, fps=30, label="", tint=RED))
        async with agent:
            await agent.negotiate(signalling(sam))
            # The avatar hands over by itself once the agent's media is up: a layout change on
            # the same stream, which the call view now shows.
            await sam.expect("layout", layout="agent", timeout=15)
            await expect(page.get_by_test_id("media")).to_have_attribute("data-layout", "agent")
            await until_colours(page, "remote-video", [(LOWER_LEFT, is_red)])
            probe = await playing(page, "remote-video", frames=5)
            assert (probe["width"], probe["height"]) == (SIZE.width, SIZE.height)
            assert await page.get_by_test_id("remote-video").evaluate(TRACK_ID) == greeting_track
            assert await page.get_by_test_id("greeter-video").evaluate(TRACK_ID) is None
            await expect(page.get_by_test_id("mute")).to_be_enabled()
            # One offer for the whole conversation: the wait's connection became the call's.
            assert len(offers) == 1
            await page.get_by_test_id("hang-up").click()
            await expect(state(page)).to_have_attribute("data-state", "ended")
        await sam.close()
        assert len(offers) == 1
        assert page.errors == []  # type: ignore[attr-defined]


async def test_a_reload_or_a_dropped_agent_greets_the_wait_again(tmp_path):
    async with (
        greeter_server(tmp_path, agent_grace_s=0.3) as server,
        chromium() as browser,
    ):
        page = await new_page(browser, permissions=["camera", "microphone"])
        offers = count_offers(page)
        await page.goto(server.url + "/")
        await page.get_by_test_id("name-input").fill("Ann")
        await page.get_by_test_id("start-call").click()
        await playing(page, "greeter-video", frames=5)
        assert len(offers) == 1

        # A reload while waiting rejoins the same place and offers the greeter's media again.
        await page.reload()
        await expect(page.get_by_test_id("queue-position")).to_have_text("1")
        await expect(page.get_by_test_id("greeter-media")).to_be_visible()
        await playing(page, "greeter-video", frames=5)
        await until_colours(page, "greeter-video", [(point, is_backdrop) for point in TOP_LEFT])
        assert len(offers) == 2

        # An agent takes the call (no new offer), then their socket drops for good: the
        # customer is back at the front of the queue, the call's media closed by the server,
        # and the page offers again for the greeter.
        sam = Client(await websockets.connect(server.ws_url, max_size=None), "sam")
        await sam.send("login", token=server.token("sam"))
        await sam.expect("logged_in")
        await sam.send("auto_answer", enabled=True)
        await sam.send("set_status", status="available")
        await sam.expect("call_started", timeout=10)
        agent = BrowserPeer.agent(camera=TestCardTrack(SIZE.width, SIZE.height, fps=30, label="", tint=RED))
        async with agent:
            await agent.negotiate(signalling(sam))
            await until_colours(page, "remote-video", [(LOWER_LEFT, is_red)])
            assert len(offers) == 2
            await sam.close()
            await expect(page.get_by_test_id("requeued")).to_be_visible(timeout=10_000)
        await expect(state(page)).to_have_attribute("data-state", "waiting")
        await expect(page.get_by_test_id("greeter-media")).to_be_visible()
        await playing(page, "greeter-video", frames=5)
        await until_colours(page, "greeter-video", [(point, is_backdrop) for point in TOP_LEFT])
        assert len(offers) == 3
        assert await page.get_by_test_id("remote-video").evaluate(TRACK_ID) is None

        # Leaving the queue stops the greeter.
        await page.get_by_test_id("leave-queue").click()
        await expect(page.get_by_test_id("start-call")).to_be_visible()
        await expect(page.get_by_test_id("greeter-media")).to_be_hidden()
        assert await page.get_by_test_id("greeter-video").evaluate(TRACK_ID) is None
        assert page.errors == []  # type: ignore[attr-defined]
