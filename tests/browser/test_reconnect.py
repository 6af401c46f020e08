"""A customer whose connection is lost mid-call (a network change) connects afresh; the call goes on.

aiortc has no ICE restart: the page builds a fresh connection and offers again on the same
call, the server's room replaces that side's peer (media_control: ``media_reconnect_s``).
"""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from benchmarks.chrome import agent_takes_the_call, chromium, customer_joins, new_page, playing, state
from tests.conftest import run_server

BOTH = ["camera", "microphone"]


async def test_a_customer_whose_connection_is_lost_reconnects_and_the_call_goes_on(tmp_path):
    settings = {"video_size": "360p", "wrap_up_s": 0, "offer_timeout_s": 30, "media_reconnect_s": 20}
    async with (
        run_server(tmp_path, **settings) as server,
        chromium() as customers,
        chromium() as agents,
    ):
        customer = await new_page(customers, permissions=BOTH)
        agent = await new_page(agents)
        await customer_joins(customer, server.url)
        await agent_takes_the_call(agent, server)
        await expect(state(customer)).to_have_attribute("data-state", "in_call")
        await playing(customer, "remote-video")
        (call,) = [c for c in server.switchboard.calls.values() if c.active]
        room = call.room
        lost = room.peers["customer"]

        # The server's end of the customer's connection goes away, as it does for a browser
        # whose network changed under it.
        await lost.close()

        for _ in range(200):  # the page notices, and offers afresh on a new connection
            if room.peers.get("customer") not in (None, lost):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the customer never offered again")
        await expect(customer.get_by_test_id("media")).to_have_attribute("data-connection", "connected")
        await playing(customer, "remote-video")
        await expect(state(customer)).to_have_attribute("data-state", "in_call")
        assert call.active and call is server.switchboard.calls[call.id]
        await playing(agent, "preview-video")
        await playing(agent, "remote-video")  # the customer's camera, over their new connection
