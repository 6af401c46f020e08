"""The live host renders its avatar only while someone watches: none before the first WHEP
viewer, none after the last one leaves, and again for the next one; none after the last call
it greeted ended."""

from __future__ import annotations

import asyncio

from media.browser import BrowserPeer
from media.sources import TestCardTrack
from tests.calls.test_media_calls import media_server, open_call, signalling, wait_for
from tests.doors.whip import WhipClient, start_host, viewer


async def rendering_stays(host, span: float = 0.5) -> bool:
    """Whether the avatar's frame counter stays put for ``span`` seconds (15 frame times)."""
    before = host.track.frames
    await asyncio.sleep(span)
    return host.track.frames == before


async def watch_then_leave(server, host) -> None:
    session = WhipClient(server.url, "/whep/host")
    async with viewer(audio=False) as watching:
        await watching.negotiate(session.answer)
        await watching.video(0).wait(15)
        seen = watching.video(0).count
        await wait_for(lambda: watching.video(0).count > seen + 10)
        assert host.track.frames > 10
        assert await session.delete() == 200
        await wait_for(lambda: not server.app.state.doors.sessions)


async def test_the_avatar_is_rendered_only_while_a_whep_viewer_watches(tmp_path):
    async with media_server(tmp_path) as server:
        host = await start_host(server)
        assert await rendering_stays(host)  # nobody watches yet
        await watch_then_leave(server, host)
        await wait_for(lambda: not host._relay.reading, timeout=10)  # the reader's cancellation lands
        assert await rendering_stays(host)  # MediaRelay went on at 30 fps here
        await watch_then_leave(server, host)  # a later viewer starts it again
        await wait_for(lambda: not host._relay.reading, timeout=10)
        assert await rendering_stays(host)


async def test_the_avatar_is_not_rendered_after_the_call_it_greeted_ends(tmp_path):
    async with media_server(tmp_path) as server:
        host = await start_host(server)
        agent_ws, customer_ws, _ = await open_call(server)
        agent = BrowserPeer.agent(camera=TestCardTrack(640, 360, fps=15, label=""))
        customer = BrowserPeer.customer()
        async with agent, customer:
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            await customer_ws.expect("layout", layout="avatar")
            await customer.video(0).wait(15)
            rendered = host.track.frames
            await wait_for(lambda: host.track.frames > rendered + 10)  # the call's compositor reads it
            assert host.viewers == 1
            await customer_ws.send("end_call")
            await agent_ws.expect("call_ended", timeout=20)
        # The room's compositor never stops its inputs: the relay notices nobody asks any more.
        await wait_for(lambda: not host._relay.reading, timeout=10)
        assert await rendering_stays(host)
        assert host.viewers == 0
