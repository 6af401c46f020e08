"""The customer page and the agent console in real (Debian) Chromium, over a real server.

A smoke test of the text flow: join, queue position, chat while waiting, the agent's
offer card with that chat, accept, chat both ways, end the call, wrap up. Media is
not wired yet (issues 4 and 5), so no video is checked here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright, expect

from benchmarks.chrome import CHROMIUM
from tests.conftest import run_server

LAUNCH_ARGS = [
    "--no-sandbox",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
]
# The docs' screenshots are refreshed on request (`TELEPRESENCE_SCREENSHOTS=docs/screenshots`),
# so a plain test run leaves the work tree clean.
SCREENSHOTS = Path(os.environ.get("TELEPRESENCE_SCREENSHOTS") or tempfile.mkdtemp(prefix="screens-"))
TIMEOUT_MS = 5000


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser: Browser, **context_options) -> Page:
    context = await browser.new_context(**context_options)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def state(page: Page):
    return page.get_by_test_id("call-state")


async def test_customer_and_agent_complete_a_text_call(tmp_path):
    async with run_server(tmp_path, offer_timeout_s=30, wrap_up_s=30) as server, chromium() as browser:
        customer = await new_page(browser, viewport={"width": 420, "height": 860})
        agent = await new_page(browser, viewport={"width": 1200, "height": 860})

        # The customer joins and waits, chatting.
        await customer.goto(server.url + "/")
        await customer.get_by_test_id("name-input").fill("Ann")
        await customer.get_by_test_id("topic-input").fill("my order has not arrived")
        await customer.get_by_test_id("language-select").select_option("en")
        await customer.get_by_test_id("start-call").click()
        await expect(customer.get_by_test_id("queue-position")).to_have_text("1")
        await expect(state(customer)).to_have_attribute("data-state", "waiting")
        # No agent is online yet: the wait is unknown, and said so.
        await expect(customer.get_by_test_id("expected-wait")).to_have_text("not known yet")
        await customer.get_by_test_id("chat-input").fill("Hello, order 1234 never came")
        await customer.get_by_test_id("chat-send").click()
        await expect(customer.get_by_test_id("chat-log")).to_contain_text("order 1234")
        await customer.screenshot(path=str(SCREENSHOTS / "customer-waiting.png"), full_page=True)

        # The agent opens the link `telepresence serve` prints, and goes available.
        token = server.token("sam", languages=("en",))
        await agent.goto(f"{server.url}/agent#token={token}")
        await expect(state(agent)).to_have_attribute("data-state", "away")
        assert "token" not in agent.url  # the token does not linger in the address bar
        await agent.get_by_test_id("go-available").click()
        incoming = agent.get_by_test_id("incoming")
        await expect(incoming).to_be_visible()
        await expect(incoming).to_contain_text("Ann")
        await expect(incoming).to_contain_text("my order has not arrived")
        await expect(incoming).to_contain_text("en")
        await expect(incoming).to_contain_text("order 1234")  # the chat so far
        await expect(incoming).to_contain_text("First contact")
        await expect(customer.get_by_test_id("call-state")).to_have_attribute("data-state", "offered")
        await agent.screenshot(path=str(SCREENSHOTS / "agent-offer.png"), full_page=True)

        # Accept: both are connected.
        await agent.get_by_test_id("accept").click()
        await expect(state(agent)).to_have_attribute("data-state", "in_call")
        await expect(state(customer)).to_have_attribute("data-state", "in_call")
        await expect(customer.get_by_test_id("connected-with")).to_have_text("Connected with sam")
        await expect(incoming).to_have_count(0)
        await expect(agent.get_by_test_id("chat-log")).to_contain_text("order 1234")

        # Chat both ways.
        await agent.get_by_test_id("chat-input").fill("Sorry about that, let me look")
        await agent.get_by_test_id("chat-input").press("Enter")
        await expect(customer.get_by_test_id("chat-log")).to_contain_text("let me look")
        await customer.get_by_test_id("chat-input").fill("Thank you!")
        await customer.get_by_test_id("chat-send").click()
        await expect(agent.get_by_test_id("chat-log")).to_contain_text("Thank you!")

        # The agent ends the call: the customer sees it ended, the agent wraps up.
        await agent.get_by_test_id("end-call").click()
        await expect(state(customer)).to_have_attribute("data-state", "ended")
        await expect(customer.get_by_test_id("ended-reason")).to_have_text("The agent ended the call.")
        await expect(state(agent)).to_have_attribute("data-state", "wrap_up")
        await agent.get_by_test_id("wrap-up-notes").fill("Resent order 1234")
        await agent.get_by_test_id("wrap-up-done").click()
        await expect(state(agent)).to_have_attribute("data-state", "available")
        await expect(agent.get_by_test_id("go-available")).to_have_attribute("aria-pressed", "true")
        await customer.get_by_test_id("new-call").click()
        await expect(customer.get_by_test_id("start-call")).to_be_visible()
        await expect(customer.get_by_test_id("name-input")).to_have_value("Ann")

        assert customer.errors == [] and agent.errors == []  # type: ignore[attr-defined]


async def test_a_reloaded_customer_tab_rejoins_its_place(tmp_path):
    async with run_server(tmp_path, rejoin_grace_s=10) as server, chromium() as browser:
        first = await new_page(browser)
        ann = await new_page(browser)
        for page, name in ((first, "Zoe"), (ann, "Ann")):
            await page.goto(server.url + "/")
            await page.get_by_test_id("name-input").fill(name)
            await page.get_by_test_id("start-call").click()
        await expect(ann.get_by_test_id("queue-position")).to_have_text("2")
        await ann.get_by_test_id("chat-input").fill("still here")
        await ann.get_by_test_id("chat-send").click()
        await expect(ann.get_by_test_id("chat-log")).to_contain_text("still here")
        await ann.reload()
        # The same place, and the chat so far, come back with the tab's ticket.
        await expect(state(ann)).to_have_attribute("data-state", "waiting")
        await expect(ann.get_by_test_id("queue-position")).to_have_text("2")
        await expect(ann.get_by_test_id("chat-log")).to_contain_text("still here")
        # The server drops Ann's socket (as a restarting proxy would): the page reconnects by itself.
        session = next(s for s in server.switchboard.customers.values() if s.name == "Ann")
        dropped = session.conn
        dropped.close(1012, "dropped by the test")
        for _ in range(100):
            if session.conn is not None and session.conn is not dropped:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the customer page did not reconnect")
        await expect(state(ann)).to_have_attribute("data-state", "waiting")
        await expect(ann.get_by_test_id("queue-position")).to_have_text("2")
        # Zoe leaves: Ann moves up.
        await first.get_by_test_id("leave-queue").click()
        await expect(state(first)).to_have_attribute("data-state", "idle")
        await expect(ann.get_by_test_id("queue-position")).to_have_text("1")
        assert first.errors == [] and ann.errors == []  # type: ignore[attr-defined]


async def test_a_link_to_a_queue_the_centre_does_not_serve_says_so_on_the_form(tmp_path):
    async with run_server(tmp_path, skills="billing") as server, chromium() as browser:
        customer = await new_page(browser, viewport={"width": 420, "height": 860})
        await customer.goto(server.url + "/?queue=sales")
        await customer.get_by_test_id("name-input").fill("Ann")
        await customer.get_by_test_id("start-call").click()
        error = customer.locator("#start-error")
        await expect(error).to_be_visible()
        await expect(error).to_contain_text("no 'sales' queue")
        await expect(customer.get_by_test_id("start-call")).to_be_visible()
        # The same page with a queue the centre serves joins it.
        await customer.goto(server.url + "/?queue=billing")
        await customer.get_by_test_id("name-input").fill("Ann")
        await customer.get_by_test_id("start-call").click()
        await expect(customer.get_by_test_id("queue-position")).to_have_text("1")
        assert not customer.errors  # type: ignore[attr-defined]
