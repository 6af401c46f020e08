"""The server room with real aiortc peers playing the agent's and the customer's browsers."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from media.browser import BrowserPeer, ToneTrack
from media.layout import AGENT, SCREEN, SIZES, compute_layout
from media.planes import frame_planes
from media.room import MediaError, Room
from media.sources import ScreenTrack, TestCardTrack
from tests.media.test_aiortc_internals import with_transport_cc


def chroma_v(frame, rect) -> float:
    _, _, v = frame_planes(frame)
    cx, cy = (rect.x + rect.width // 2) // 2, (rect.y + rect.height * 7 // 8) // 2
    return float(v[cy - 3 : cy + 3, cx - 3 : cx + 3].mean())


async def wait_for(predicate, timeout=10.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


@pytest.fixture
async def room():
    room = Room(label="test", agent_name="Ada Lovelace", size="360p", fps=30)
    yield room
    await room.close()


async def test_customer_sees_the_agent_camera_and_hears_the_agent(room):
    camera = TestCardTrack(640, 360, fps=30, stamp=True, label="", tint=(200, 0, 0))
    agent = BrowserPeer.agent(camera=camera, screen=ScreenTrack(640, 360, fps=5), mic=ToneTrack(440))
    customer = BrowserPeer.customer(mic=ToneTrack(880))
    async with agent, customer:
        await agent.negotiate(room.answer)
        await customer.negotiate(room.answer)
        composite = await customer.video(0).wait(10)
        assert (composite.width, composite.height) == (640, 360)
        full = compute_layout(SIZES["360p"], "agent", {AGENT})[0].content
        await wait_for(lambda: chroma_v(customer.video(0).latest, full) > 170)
        # Audio both ways: each side hears the other's tone, not silence.
        await wait_for(lambda: customer.audio.loudness() > 500)
        await wait_for(lambda: agent.audio.loudness() > 500)
        # The agent's preview is the same composite.
        preview = await agent.video(0).wait(10)
        assert (preview.width, preview.height) == (640, 360)


async def test_screen_share_switches_the_layout_without_renegotiation(room):
    camera = TestCardTrack(640, 360, fps=30, label="", tint=(200, 0, 0))
    agent = BrowserPeer.agent(camera=camera, screen=ScreenTrack(640, 360, fps=5))
    customer = BrowserPeer.customer()
    async with agent, customer:
        await agent.negotiate(room.answer)
        await customer.negotiate(room.answer)
        await customer.video(0).wait(10)
        before = customer.transceiver_count()
        await room.screen_shared(True)
        tiles = {t.name: t.content for t in compute_layout(SIZES["360p"], "screen", {AGENT, SCREEN})}
        await wait_for(lambda: frame_planes(customer.video(0).latest)[0][tiles[SCREEN].y + 60, 320] > 150)
        await wait_for(lambda: chroma_v(customer.video(0).latest, tiles[AGENT]) > 170)
        assert customer.transceiver_count() == before
        await room.screen_shared(False)
        full = compute_layout(SIZES["360p"], "agent", {AGENT})[0].content
        seen = customer.video(0).count
        await wait_for(
            lambda: customer.video(0).count > seen + 15 and chroma_v(customer.video(0).latest, full) > 170
        )
        # Never a black frame across both switches.
        assert customer.video(0).darkest_mean > 40


async def test_customer_camera_and_screen_reach_the_agent(room):
    agent = BrowserPeer.agent(camera=TestCardTrack(640, 360, fps=15))
    customer = BrowserPeer.customer(
        camera=TestCardTrack(320, 180, fps=15, label="", tint=(0, 200, 0)),
        screen=ScreenTrack(640, 360, fps=5),
    )
    async with agent, customer:
        await agent.negotiate(room.answer)
        await customer.negotiate(room.answer)
        cam = await agent.video(2).wait(10)
        assert (cam.width, cam.height) == (320, 180)
        screen = await agent.video(3).wait(10)
        assert (screen.width, screen.height) == (640, 360)


async def test_camera_off_shows_the_agent_placeholder_not_black(room):
    agent = BrowserPeer.agent(camera=None)
    customer = BrowserPeer.customer()
    async with agent, customer:
        await agent.negotiate(room.answer)
        await customer.negotiate(room.answer)
        frame = await customer.video(0).wait(10)
        y = frame_planes(frame)[0]
        assert y.mean() > 20 and y.std() > 5  # the placeholder with initials, not a flat black frame


@pytest.mark.parametrize(
    ("sdp", "code"),
    [
        ("not an sdp", "bad_sdp"),
        ("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", "no_video"),
    ],
)
async def test_bad_offers_get_a_clear_error_and_the_room_carries_on(room, sdp, code):
    with pytest.raises(MediaError) as error:
        await room.answer("customer", sdp)
    assert error.value.code == code
    customer = BrowserPeer.customer()
    agent = BrowserPeer.agent(camera=TestCardTrack(640, 360, fps=15))
    async with agent, customer:
        await agent.negotiate(room.answer)
        await customer.negotiate(room.answer)
        await customer.video(0).wait(10)


async def test_offer_with_no_video_and_unsupported_codec_are_refused(room):
    audio_only = BrowserPeer.customer(video=False)
    async with audio_only:
        with pytest.raises(MediaError) as error:
            await audio_only.negotiate(room.answer)
        assert error.value.code == "no_video"
    strange = BrowserPeer.customer()
    async with strange:
        offer = await strange.offer()
        for codec in ("VP8", "H264", "rtx"):
            offer = offer.replace(f" {codec}/90000", " XYZ/90000")
        with pytest.raises(MediaError) as error:
            await room.answer("customer", offer)
        assert error.value.code == "unsupported_codec"


async def test_h264_works_end_to_end():
    room = Room(label="h264", agent_name="Ada", size="360p", codec="H264")
    agent = BrowserPeer.agent(camera=TestCardTrack(640, 360, fps=30, label="", tint=(200, 0, 0)))
    customer = BrowserPeer.customer()
    try:
        async with agent, customer:
            await agent.negotiate(room.answer)
            await customer.negotiate(room.answer)
            await customer.video(0).wait(10)
            assert customer.codec(0) == "H264"
    finally:
        await room.close()


async def test_close_leaves_no_tasks_behind():
    before = {t for t in asyncio.all_tasks()}
    room = Room(label="leak", agent_name="Ada", size="360p")
    agent = BrowserPeer.agent(camera=TestCardTrack(640, 360, fps=30), mic=ToneTrack(440))
    customer = BrowserPeer.customer(mic=ToneTrack(880), camera=TestCardTrack(320, 180, fps=15))
    async with agent, customer:
        await agent.negotiate(room.answer)
        await customer.negotiate(room.answer)
        await customer.video(0).wait(10)
        await room.close()
        await room.close()  # twice is safe
    await asyncio.sleep(0.2)
    left = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    assert not left, [t.get_name() for t in left]
    assert np.isfinite(room.compositor.receipt.summary()["compose"]["p95"])


async def test_the_receipt_has_the_servers_share_and_what_a_browser_did_not_offer(room):
    agent = BrowserPeer.agent(camera=TestCardTrack(320, 180, fps=30, label=""), mic=ToneTrack(440))
    customer = BrowserPeer.customer()
    async with agent, customer:

        async def answer_like_chromium(role, sdp):
            return await room.answer(role, with_transport_cc(sdp))

        await agent.negotiate(answer_like_chromium)
        await customer.negotiate(room.answer)  # aiortc offers no transport-cc
        assert room.missing == {"agent": [], "customer": ["transport-cc", "abs-capture-time", "rcvr-rtt"]}
        assert "agent" in room.feedback and "customer" not in room.feedback
        await customer.video(0).wait(10)
        # First packet of the agent's frame in -> last packet of the composite out.
        await wait_for(lambda: room.compositor.receipt.counts.get("server", 0) >= 10)
        server = room.compositor.receipt.summary()["server"]
        assert 0 < server["p50"] < 1000
