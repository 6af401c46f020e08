"""The operator studio in real (Debian) Chromium: the avatar host, driven by a fake camera, reaches customers.

Three parties over one real server:
- the studio (`/studio`) in a Chromium whose fake camera is a clip of a real face (scikit-image's
  astronaut, gently rolling its head), so the server's face driver has a face to follow;
- a customer (`/`) in a second Chromium, who joins the queue;
- the agent, a Python aiortc peer laid out like the agent console, whose camera is a test card
  with a red lower band.

The call opens on the avatar: the customer's composite shows the Aurora look (its deep blue
backdrop and skin tone, never the agent's red card), a caption typed in the studio shows up in
the customer's picture, and the studio's hand-over switches the customer to the agent's camera.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import tomllib
from pathlib import Path

import cv2
import numpy as np
import websockets
from aiortc import RTCSessionDescription
from playwright.async_api import Page, expect
from skimage import data

from benchmarks.chrome import SCREENSHOTS, chromium, is_red, new_page, playing, sample, until_colours
from media.avatar.spec import load_spec, shipped_looks
from media.browser import BrowserPeer, ToneTrack
from media.layout import AGENT, SIZES, compute_layout
from media.sources import TestCardTrack
from tests.conftest import Client, run_server

WEB = Path(__file__).resolve().parents[2] / "web_client"
SIZE = SIZES["360p"]
SETTINGS = {"video_size": "360p", "wrap_up_s": 0, "offer_timeout_s": 30, "rejoin_grace_s": 20}
BOTH = ["camera", "microphone"]


def write_face_clip(
    path: Path, width: int = 640, height: int = 480, seconds: float = 3.0, fps: int = 15
) -> Path:
    """A Y4M clip of a real face for Chromium's fake camera: the astronaut, rolling her head +-8 degrees."""
    astronaut = np.ascontiguousarray(data.astronaut()[:, :, :3])
    canvas = np.full((height, width, 3), 120, np.uint8)
    left = (width - height) // 2
    canvas[:, left : left + height] = cv2.resize(astronaut, (height, height), interpolation=cv2.INTER_AREA)
    count = int(seconds * fps)
    half = (width // 2, height // 2)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(count):
            roll = 8.0 * math.sin(2 * math.pi * i / count)
            turn = cv2.getRotationMatrix2D((width / 2, height * 0.4), roll, 1.0)
            rgb = cv2.warpAffine(canvas, turn, (width, height), borderMode=cv2.BORDER_REPLICATE)
            r, g, b = (rgb[..., c].astype(np.float32) for c in range(3))
            # BT.601 limited range, which is how Chromium reads a fake capture clip.
            y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
            u = cv2.resize(128 - 0.148 * r - 0.291 * g + 0.439 * b, half, interpolation=cv2.INTER_AREA)
            v = cv2.resize(128 + 0.439 * r - 0.368 * g - 0.071 * b, half, interpolation=cv2.INTER_AREA)
            out.write(b"FRAME\n")
            for plane in (y, u, v):
                out.write(np.clip(np.rint(plane), 0, 255).astype(np.uint8).tobytes())
    return path


def hex_rgb(value: str) -> tuple[int, int, int]:
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


def near(colour, target, tolerance: int) -> bool:
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(colour, target, strict=True))


# Aurora (media/avatar/looks/aurora.toml) on a 640x360 frame: a deep blue backdrop (#1d2b4a, lit
# to about #355a8c behind the head), a face of skin #f1c7a5 around (320, 165), an orange
# (#e4572e) outfit at the bottom centre, where captions go.
AURORA = tomllib.loads(shipped_looks()["aurora"].read_text())["colors"]
BACKDROP_POINTS = [(30, 30), (30, 330), (610, 330), (110, 200), (530, 200)]
FACE_POINTS = [(x, y) for x in range(290, 351, 15) for y in range(130, 201, 14)]
CAPTION_POINTS = [(x, 332) for x in range(240, 401, 20)]


def is_backdrop(rgb) -> bool:
    """Between the backdrop's colour and its lit accent: a deep blue, never the agent's red or bars."""
    r, g, b = rgb
    low, high = hex_rgb(AURORA["background"]), hex_rgb(AURORA["background_accent"])
    inside = all(lo - 20 <= c <= hi + 20 for c, lo, hi in zip(rgb, low, high, strict=True))
    return inside and b > r + 30


def is_skin(rgb) -> bool:
    r, g, b = rgb
    return near(rgb, hex_rgb(AURORA["skin"]), 45) and r > g > b


def is_caption(rgb) -> bool:
    """The caption's dark box (with white letters) over the orange outfit."""
    return rgb[0] < 150 and not is_red(rgb)


async def frames_shown(page: Page) -> int:
    """Frames the customer's picture presented so far (0 where nothing counts them yet)."""
    return await page.get_by_test_id("remote-video").evaluate("v => v.__frames ? v.__frames.n : 0")


async def until_sampled(page: Page, points, good, timeout_s: float) -> list:
    """Sample the customer's picture until ``good(colours)``: the composite takes a frame or two."""
    waited = 0.0
    shown = await frames_shown(page)
    while True:
        colours = await sample(page, "remote-video", points)
        if good(colours):
            return colours
        if waited > timeout_s:
            # Whether the picture moved meanwhile tells a stalled stream from a late change.
            moved = await frames_shown(page) - shown
            raise AssertionError(f"colours {colours} at {points} never matched ({moved} new frames shown)")
        await page.wait_for_timeout(150)
        waited += 0.15


async def studio_events(page: Page) -> list[dict]:
    script = (
        "items => items.map(i => ({kind: i.dataset.kind, source: i.dataset.source, text: i.textContent}))"
    )
    return await page.get_by_test_id("event-log").locator("li").evaluate_all(script)


def test_the_studio_offers_exactly_the_guardrails_of_the_shipped_looks():
    source = (WEB / "js" / "studio-looks.js").read_text()
    table = json.loads(re.search(r"export const LOOKS = (\{.*?\n\});", source, re.S).group(1))
    looks = shipped_looks()
    assert set(table) == set(looks)
    for name, path in looks.items():
        spec = load_spec(path)
        assert set(table[name]["expressions"]) == spec.expressions, name
        assert set(table[name]["gestures"]) == spec.gestures, name
    options = re.findall(r'<option value="([a-z]+)"', (WEB / "studio.html").read_text())
    assert set(options) == set(looks)


async def test_the_studio_drives_the_avatar_and_a_customer_in_a_call_sees_it(tmp_path):
    face_clip = write_face_clip(tmp_path / "operator-face.y4m")
    async with (
        run_server(tmp_path, **SETTINGS) as server,
        chromium(camera_clip=face_clip) as studios,
        chromium(fake_ui=False) as customers,
        contextlib.AsyncExitStack() as stack,
    ):
        # ---- the operator starts the host with the Aurora look, from the studio page
        studio = await new_page(studios, viewport={"width": 1280, "height": 900})
        await studio.goto(f"{server.url}/studio#token={server.token('olga', role='operator')}")
        state = studio.get_by_test_id("host-state")
        await expect(state).to_have_attribute("data-state", "stopped")
        assert "#token" not in studio.url  # the token left the address bar
        await expect(studio.get_by_test_id("say-input")).to_be_disabled()
        await studio.get_by_test_id("look-select").select_option("aurora")
        await studio.get_by_test_id("host-start").click()
        await expect(state).to_have_attribute("data-state", "running")
        await expect(state).to_contain_text("Aurora")
        await expect(studio.get_by_test_id("host-stop")).to_be_enabled()

        # The live preview plays, the operator's own camera drives it (the server tracks the face),
        # and the pads offer what Aurora's guardrails allow, with their shortcuts.
        probe = await playing(studio, "avatar-preview")
        assert probe["width"] > 0 and probe["height"] > 0
        await expect(studio.get_by_test_id("device-status")).to_have_attribute("data-drives", "face voice")
        await expect(studio.get_by_test_id("device-message")).to_be_hidden()
        host = server.switchboard.host_control.desk.host
        for _ in range(100):
            if host.face.tracking:
                break
            await studio.wait_for_timeout(100)
        assert host.face.tracking, "the face driver found no face in the studio's camera"
        await expect(studio.get_by_test_id("expression-surprise")).to_have_attribute("aria-keyshortcuts", "4")
        await expect(studio.get_by_test_id("gesture-wave")).to_contain_text("W")
        await expect(studio.get_by_test_id("expression-sad")).to_have_count(0)  # not allowed by Aurora

        # ---- the agent (an aiortc peer; its camera a test card with a red lower band) answers automatically
        agent_ws = Client(await websockets.connect(server.ws_url, max_size=None), "agent")
        stack.push_async_callback(agent_ws.close)
        await agent_ws.send("login", token=server.token("sam"))
        await agent_ws.expect("logged_in")
        await agent_ws.send("auto_answer", enabled=True)
        await agent_ws.send("set_status", status="available")

        # ---- a customer joins in the browser: the call opens on the avatar, greeting
        customer = await new_page(customers, permissions=BOTH, viewport={"width": 390, "height": 844})
        offers: list[str] = []  # the customer's webrtc_offer messages
        customer.on(
            "websocket",
            lambda ws: ws.on("framesent", lambda f: offers.append(f) if '"webrtc_offer"' in str(f) else None),
        )
        await customer.goto(server.url + "/")
        await customer.get_by_test_id("name-input").fill("Ann")
        await customer.get_by_test_id("start-call").click()
        await agent_ws.expect("call_started", timeout=10)
        camera = TestCardTrack(640, 360, fps=30, label="", tint=(200, 0, 0))
        agent = BrowserPeer.agent(camera=camera, mic=ToneTrack())
        await stack.enter_async_context(agent)
        await agent_ws.send("webrtc_offer", sdp=await agent.offer())
        answer = await agent_ws.expect("webrtc_answer", timeout=15)
        await agent.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))

        await expect(customer.get_by_test_id("call-state")).to_have_attribute("data-state", "in_call")
        await expect(customer.get_by_test_id("media")).to_have_attribute("data-layout", "avatar")
        probe = await playing(customer, "remote-video")
        assert (probe["width"], probe["height"]) == (SIZE.width, SIZE.height)
        # The avatar, not the agent: Aurora's backdrop all round, her face in the middle, no red.
        await until_colours(customer, "remote-video", [(p, is_backdrop) for p in BACKDROP_POINTS])
        await until_sampled(
            customer, FACE_POINTS, lambda found: sum(map(is_skin, found)) >= len(found) // 2, 5
        )
        colours = await sample(customer, "remote-video", BACKDROP_POINTS)
        assert not any(map(is_red, colours)), f"the agent's red camera reached the customer: {colours}"
        first = await customer.get_by_test_id("remote-video").evaluate("v => v.__frames.n")
        await playing(customer, "remote-video", frames=15)  # the avatar is live, not a still
        assert await customer.get_by_test_id("remote-video").evaluate("v => v.__frames.n") > first

        # ---- the studio says something: its event log, its caption line and the customer's picture show it
        line = "Hello Ann, welcome to Acme! An agent will be with you shortly."
        await studio.get_by_test_id("say-input").fill(line)
        await studio.get_by_test_id("say-send").click()
        await expect(studio.get_by_test_id("say-input")).to_have_value("")
        await expect(studio.get_by_test_id("host-caption")).to_have_text(line)
        await until_sampled(customer, CAPTION_POINTS, lambda colours: sum(map(is_caption, colours)) >= 6, 5)
        events = await studio_events(studio)
        assert any(e["kind"] == "started_talking" and line in e["text"] for e in events), events
        # Keyboard: a smile (2) and a wave (W), with the focus out of the text box.
        await studio.get_by_test_id("say-input").blur()
        await studio.keyboard.press("2")
        await expect(studio.get_by_test_id("expression-smile")).to_have_attribute("aria-pressed", "true")
        await studio.keyboard.press("w")
        await studio.screenshot(path=str(SCREENSHOTS / "studio.png"), full_page=True)
        # A command the look forbids is refused with a clear error; the host carries on.
        await studio.get_by_test_id("script-panel").locator("summary").click()
        await studio.get_by_test_id("script-input").fill("say Fine\nexpression sad")
        await studio.get_by_test_id("script-run").click()
        await expect(studio.get_by_test_id("command-error")).to_contain_text("line 2")
        await expect(state).to_have_attribute("data-state", "running")
        # Escape interrupts a long speech at once (it would run ~5 s): the caption goes, talking stops.
        await studio.get_by_test_id("say-input").fill(
            "This is a long announcement that nobody wants to hear in full."
        )
        await studio.get_by_test_id("say-input").press("Enter")
        await expect(studio.get_by_test_id("host-caption")).to_contain_text("long announcement")
        await studio.keyboard.press("Escape")
        await expect(studio.get_by_test_id("host-caption")).to_be_hidden(timeout=1500)
        stopped = studio.locator(
            '[data-testid="event-log"] li[data-kind="stopped_talking"][data-source="script"]'
        )
        await expect(stopped.filter(has_text="long announcement")).to_have_count(1, timeout=1500)

        # ---- hand over: a layout change switches the customer to the agent's camera (its red band)
        await studio.get_by_test_id("handover").click()
        await expect(customer.get_by_test_id("media")).to_have_attribute("data-layout", "agent")
        full = compute_layout(SIZE, "agent", {AGENT})[0].content
        band = full.y + full.height * 7 // 8  # the agent card's red lower band, edge to edge
        await until_colours(
            customer, "remote-video", [((full.x + 30, band), is_red), ((full.right - 30, band), is_red)]
        )
        await playing(customer, "remote-video", frames=5)
        assert len(offers) == 1, "the customer renegotiated: a hand-over must be a layout change only"

        # ---- stop the host: the studio lets go of the camera
        await studio.get_by_test_id("host-stop").click()
        await expect(state).to_have_attribute("data-state", "stopped")
        await expect(studio.get_by_test_id("host-start")).to_be_enabled()
        assert await studio.get_by_test_id("operator-camera").evaluate("v => v.srcObject === null")
        assert studio.errors == [] and customer.errors == []  # type: ignore[attr-defined]


async def test_a_refused_camera_and_microphone_are_explained_and_the_host_still_runs(tmp_path):
    async with run_server(tmp_path, **SETTINGS) as server, chromium(fake_ui=False) as browser:
        # No fake UI and no permission granted: getUserMedia is refused, as when a person says no.
        studio = await new_page(browser, viewport={"width": 390, "height": 844})  # a phone
        await studio.goto(f"{server.url}/studio")
        await studio.get_by_test_id("token-input").fill(server.token("olga", role="operator"))
        await studio.get_by_test_id("token-input").press("Enter")
        await studio.get_by_test_id("look-select").select_option("harbor")
        await expect(studio.get_by_test_id("gesture-shake")).to_have_count(0)  # Harbor does not shake
        await studio.get_by_test_id("host-start").click()
        await expect(studio.get_by_test_id("host-state")).to_contain_text("Harbor")
        message = studio.get_by_test_id("device-message")
        await expect(message).to_be_visible()
        await expect(message).to_contain_text("camera was refused")
        await expect(message).to_contain_text("microphone was refused")
        await expect(message).to_have_attribute("role", "alert")
        await expect(studio.get_by_test_id("device-status")).to_have_attribute("data-drives", "none")
        # The avatar still comes back to the studio, and the buttons still drive it.
        await playing(studio, "avatar-preview", frames=5)
        await studio.get_by_test_id("gesture-nod").click()
        await expect(studio.get_by_test_id("command-error")).to_be_hidden()
        assert studio.errors == []  # type: ignore[attr-defined]
