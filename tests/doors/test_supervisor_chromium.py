"""The supervisor page in real (Debian) Chromium: it lists a live call between two Chromium tabs,
plays what the customer sees, and its push-to-talk whisper lights the agent console's indicator;
the customer's page is never told."""

from __future__ import annotations

import pytest

from media.layout import AGENT, SIZES, compute_layout

pytest.importorskip("playwright")
chrome = pytest.importorskip("benchmarks.chrome")
if not chrome.CHROMIUM.exists():
    pytest.skip(f"Debian's Chromium at {chrome.CHROMIUM} is not installed", allow_module_level=True)

from playwright.async_api import expect  # noqa: E402 - after the skips above

from tests.conftest import run_server  # noqa: E402

SETTINGS = {"video_size": "360p", "wrap_up_s": 0, "offer_timeout_s": 30, "rejoin_grace_s": 20}
FULL = compute_layout(SIZES["360p"], "agent", {AGENT})[0].content


async def test_the_supervisor_page_watches_a_call_and_whispers_to_the_agent(tmp_path):
    red_camera = chrome.write_card(tmp_path / "agent-camera.y4m")
    async with (
        run_server(tmp_path, **SETTINGS) as server,
        chrome.chromium() as others,
        chrome.chromium(camera_clip=red_camera) as agents,
    ):
        customer = await chrome.new_page(others, permissions=["camera", "microphone"])
        agent = await chrome.new_page(agents)
        await chrome.customer_joins(customer, server.url)
        await chrome.agent_takes_the_call(agent, server)
        await chrome.playing(customer, "remote-video")

        supervisor = await chrome.new_page(others, permissions=["microphone"])
        await supervisor.goto(f"{server.url}/supervisor#token={server.token('sue', role='supervisor')}")
        rows = supervisor.get_by_test_id("calls").locator("tbody tr")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("sam")
        await supervisor.get_by_test_id("watch-button").click()
        await expect(supervisor.get_by_test_id("watch-state")).to_have_attribute("data-state", "watching")
        await chrome.playing(supervisor, "watch-video")
        centre = (FULL.x + FULL.width // 2, FULL.y + FULL.height // 2)
        await chrome.until_colours(supervisor, "watch-video", [(centre, chrome.is_red)])
        await expect(supervisor.get_by_test_id("watch-audio")).to_have_count(2)  # both voices

        indicator = agent.get_by_test_id("supervisor-indicator")
        await expect(indicator).to_be_visible()
        await expect(indicator).to_have_attribute("data-watching", "1")
        await expect(indicator).to_have_attribute("data-whispering", "false")

        whisper = supervisor.get_by_test_id("whisper")
        # Let go before the microphone came (as the permission prompt's click does): no whisper.
        await whisper.evaluate(
            """button => {
                button.dispatchEvent(new PointerEvent("pointerdown"));
                button.dispatchEvent(new PointerEvent("pointerup"));
            }"""
        )
        await supervisor.wait_for_timeout(1500)  # the microphone has come by now
        await expect(whisper).to_have_attribute("aria-pressed", "false")
        await expect(supervisor.get_by_test_id("watch-state")).to_have_attribute("data-state", "watching")
        await expect(indicator).to_have_attribute("data-whispering", "false")
        await whisper.dispatch_event("pointerdown")
        await expect(whisper).to_have_attribute("aria-pressed", "true")
        await expect(indicator).to_have_attribute("data-whispering", "true", timeout=10_000)
        await whisper.dispatch_event("pointerup")
        await expect(indicator).to_have_attribute("data-whispering", "false", timeout=10_000)

        await supervisor.get_by_test_id("stop-watching").click()
        await expect(indicator).to_be_hidden()
        assert not server.app.state.doors.sessions
        assert await customer.get_by_text("supervisor").count() == 0  # the customer is not told
        for page in (customer, agent, supervisor):
            assert not page.errors, page.errors  # type: ignore[attr-defined]
