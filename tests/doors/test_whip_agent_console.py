"""The agent console in Debian's Chromium says "Camera from WHIP" while the agent publishes over
WHIP, and stops saying it when the session ends."""

from __future__ import annotations

import pytest

from tests.calls.test_media_calls import media_server
from tests.doors.whip import WhipClient, publisher

pytest.importorskip("playwright")
chrome = pytest.importorskip("benchmarks.chrome")
if not chrome.CHROMIUM.exists():
    pytest.skip(f"Debian's Chromium at {chrome.CHROMIUM} is not installed", allow_module_level=True)


async def test_the_agent_console_shows_camera_from_whip(tmp_path):
    async with media_server(tmp_path) as server:
        async with chrome.chromium() as browser:
            page = await chrome.new_page(browser)
            await page.goto(f"{server.url}/agent#token={server.token('sam')}")
            await chrome.expect(page.get_by_test_id("go-available")).to_be_visible()
            note = page.get_by_test_id("camera-source")
            await chrome.expect(note).to_be_hidden()
            whip = WhipClient(server.url, "/whip/agent", server.token("sam"))
            async with publisher() as encoder:
                await encoder.negotiate(whip.answer)
                await chrome.expect(note).to_be_visible()
                await chrome.expect(note).to_contain_text("Camera from WHIP")
                assert await whip.delete() == 200
                await chrome.expect(note).to_be_hidden()
            assert not page.errors
