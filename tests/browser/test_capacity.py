"""Capacity in real Chromium (docs/protocol.md, "Capacity"): a server over its CPU threshold caps
the agent's screen sender, never the camera; an agent console shows customers waiting for capacity."""

from __future__ import annotations

import re

from playwright.async_api import expect

from benchmarks.chrome import agent_takes_the_call, chromium, customer_joins, new_page
from tests.conftest import join, login, run_server
from tests.control.test_admission import clients, measured

# Keep every peer connection the page makes, to read its senders' parameters.
RECORD_PEER_CONNECTIONS = """
window.__pcs = [];
const Original = window.RTCPeerConnection;
window.RTCPeerConnection = class extends Original {
  constructor(...args) { super(...args); window.__pcs.push(this); }
};
"""

# Each live video sender's track kind ("screen" or "camera") and its encodings' limits.
SENDER_LIMITS = """() => {
  const pc = window.__pcs[window.__pcs.length - 1];
  return pc.getSenders()
    .filter((s) => s.track && s.track.kind === "video" && s.track.readyState === "live")
    .map((s) => ({
      kind: s.track.getSettings().displaySurface ? "screen" : "camera",
      encodings: s.getParameters().encodings.map((e) => ({
        maxFramerate: e.maxFramerate ?? null,
        scale: e.scaleResolutionDownBy ?? 1,
      })),
    }));
}"""


async def test_a_busy_server_caps_the_agents_screen_sender_and_never_the_camera(tmp_path):
    settings = {"video_size": "360p", "wrap_up_s": 0, "offer_timeout_s": 30, "cpu_shed_pct": 1}
    async with (
        run_server(tmp_path, **settings) as server,  # any machine is busier than 1 %: it sheds
        chromium() as customers,
        chromium() as agents,
    ):
        customer = await new_page(customers, permissions=["camera", "microphone"])
        agent = await new_page(agents, viewport={"width": 1280, "height": 900})
        await agent.add_init_script(RECORD_PEER_CONNECTIONS)
        await customer_joins(customer, server.url)
        await agent_takes_the_call(agent, server)
        media = agent.get_by_test_id("media")
        await expect(media).to_have_attribute("data-screen-limit", re.compile(r"^screen_"), timeout=15_000)
        await agent.get_by_test_id("share-screen").click()
        await expect(agent.get_by_test_id("share-screen")).to_have_attribute("aria-pressed", "true")

        async def limited() -> bool:
            senders = await agent.evaluate(SENDER_LIMITS)
            screens = [s for s in senders if s["kind"] == "screen"]
            cameras = [s for s in senders if s["kind"] == "camera"]
            assert cameras and all(
                e == {"maxFramerate": None, "scale": 1} for s in cameras for e in s["encodings"]
            ), senders
            return bool(screens) and all(
                e["maxFramerate"] in (15, 5) for s in screens for e in s["encodings"]
            )

        for _ in range(100):
            if await limited():
                break
            await agent.wait_for_timeout(100)
        else:
            raise AssertionError(await agent.evaluate(SENDER_LIMITS))
        assert customer.errors == [] and agent.errors == []  # type: ignore[attr-defined]


async def test_an_agent_console_shows_customers_waiting_for_capacity(tmp_path):
    async with (
        run_server(tmp_path, cpu_budget_pct=1, wrap_up_s=0) as server,  # spent by one call
        clients(server) as connect,
        chromium() as browser,
    ):
        lea = await login(connect, server, "lea")
        await measured(server)
        ann = await join(connect, "Ann")
        await lea.send("accept", offer_id=(await lea.expect("offer"))["offer_id"])
        await ann.expect("call_started")  # one call: the budget is spent
        page = await new_page(browser, viewport={"width": 1280, "height": 900})
        await page.goto(f"{server.url}/agent#token={server.token('sam')}")
        await page.get_by_test_id("go-available").click()
        await expect(page.get_by_test_id("go-available")).to_have_attribute("aria-pressed", "true")
        # Bob, in a browser: Sam is free, yet Bob waits, and his page says why.
        bob = await new_page(browser, viewport={"width": 390, "height": 844})
        await customer_joins(bob, server.url, name="Bob")
        await expect(bob.get_by_test_id("queue-detail")).to_contain_text("at capacity")
        await expect(page.get_by_test_id("capacity")).to_contain_text("1 customer waits", timeout=15_000)
        await expect(page.get_by_test_id("capacity")).to_contain_text("at capacity")
        await expect(page.get_by_test_id("accept")).to_be_hidden()  # no offer for Sam
        assert page.errors == [] and bob.errors == []  # type: ignore[attr-defined]
