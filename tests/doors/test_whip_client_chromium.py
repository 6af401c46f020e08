"""Two clients this project did not write, end to end: Debian's whip-client publishes a blue
test pattern as the agent's camera, and the customer's page in Debian's Chromium shows it where
the agent's red browser camera was, until whip-client ends its session; the agent's console in
Chromium says "Camera from WHIP" meanwhile."""

from __future__ import annotations

import signal

import pytest

from media.layout import AGENT, SIZES, compute_layout
from tests.conftest import run_server
from tests.doors import gstreamer

pytest.importorskip("playwright")
chrome = pytest.importorskip("benchmarks.chrome")
if not chrome.CHROMIUM.exists():
    pytest.skip(f"Debian's Chromium at {chrome.CHROMIUM} is not installed", allow_module_level=True)

FULL = compute_layout(SIZES["360p"], "agent", {AGENT})[0].content
CENTRE = (FULL.x + FULL.width // 2, FULL.y + FULL.height // 2)


def is_blue(rgb) -> bool:
    r, g, b = rgb
    return b > 140 and r < 90 and g < 90


@pytest.mark.browser
async def test_chromium_customer_sees_the_agents_whip_client_camera(tmp_path):
    if reason := gstreamer.missing_for_whip("vp8enc", "opusenc"):
        pytest.skip(reason)
    red_camera = chrome.write_card(tmp_path / "agent-camera.y4m")
    settings = {"video_size": "360p", "wrap_up_s": 0, "offer_timeout_s": 30, "rejoin_grace_s": 20}
    async with (
        run_server(tmp_path, **settings) as server,
        chrome.chromium() as customers,
        chrome.chromium(camera_clip=red_camera) as agents,
    ):
        customer = await chrome.new_page(customers, permissions=["camera", "microphone"])
        agent = await chrome.new_page(agents)
        await chrome.customer_joins(customer, server.url)
        await chrome.agent_takes_the_call(agent, server)
        await chrome.playing(customer, "remote-video")
        await chrome.until_colours(customer, "remote-video", [(CENTRE, chrome.is_red)])
        note = agent.get_by_test_id("camera-source")
        publishing = gstreamer.whip_client(
            server.url + "/whip/agent",
            server.token("sam"),
            tmp_path,
            video=gstreamer.video_pipeline("blue", "VP8"),
            audio=gstreamer.audio_pipeline(660),
        )
        async with publishing as whip:
            try:
                await chrome.expect(note).to_contain_text("Camera from WHIP")
                await chrome.until_colours(customer, "remote-video", [(CENTRE, is_blue)])
                await chrome.playing(customer, "remote-video", frames=10)
            except AssertionError as failed:
                raise AssertionError(f"{failed}\nwhip-client said:\n{whip.output()}") from None
            assert await whip.stop(signal.SIGINT) == 0  # its DELETE sent
        await chrome.expect(note).to_be_hidden()
        await chrome.until_colours(customer, "remote-video", [(CENTRE, chrome.is_red)])
        await chrome.playing(customer, "remote-video", frames=10)
        assert not server.app.state.doors.sessions
        assert not customer.errors and not agent.errors
