"""Agent peer -> server compositor -> customer peer, over real aiortc loopback peers and real encoders."""

import asyncio

import numpy as np

from media.compositor import CompositorTrack
from media.layout import AGENT, SCREEN, SIZES, compute_layout
from media.planes import frame_planes
from media.sources import ScreenTrack, TestCardTrack
from media.stamp import read_stamp
from media.testing import LoopbackCall


def mean_yuv(frame, rect):
    y, u, v = frame_planes(frame)
    cx, cy = rect.x + rect.width // 2, rect.y + rect.height // 2
    return (
        float(y[cy - 8 : cy + 8, cx - 8 : cx + 8].mean()),
        float(u[cy // 2 - 4 : cy // 2 + 4, cx // 2 - 4 : cx // 2 + 4].mean()),
        float(v[cy // 2 - 4 : cy // 2 + 4, cx // 2 - 4 : cx // 2 + 4].mean()),
    )


async def wait_for(predicate, timeout=10.0):  # noqa: ASYNC109 - polling helper
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_composite_reaches_the_customer_with_tiles_in_place_and_stamps_readable():
    size = SIZES["360p"]
    compositor = CompositorTrack(size=size, layout="agent", agent_name="Ada", fade_ms=0)
    # The agent's camera is a flat red card (easy to find by pixels), the screen a light page.
    camera = TestCardTrack(640, 360, fps=30, stamp=True, label="", tint=(200, 0, 0))
    screen = ScreenTrack(640, 360, fps=5)
    agent = LoopbackCall(
        [camera, screen], into=[compositor.slot(AGENT), compositor.slot(SCREEN)], label="agent"
    )
    customer = LoopbackCall([compositor], label="customer")
    async with agent, customer:
        await customer.wait_frames(5)
        await wait_for(lambda: compositor.slot(SCREEN).received > 0 and compositor.slot(AGENT).received > 0)

        # Agent layout: the camera fills the frame, its stamp readable by the customer.
        await customer.wait_frames(customer.slots[0].received + 3)
        frame = customer.slots[0].latest.frame
        stamp = read_stamp(frame)
        assert stamp is not None and stamp.age_ms() < 2000
        lower = compute_layout(size, "agent", {AGENT})[0].content
        band = type(lower)(lower.x, 300, lower.width, 40)
        assert mean_yuv(frame, band)[2] > 170  # red chroma: the camera's tint band

        # A screen share switches the layout without renegotiation: same track, same transceiver.
        transceivers = customer.sender.getTransceivers()
        compositor.set_layout("screen")
        slot = customer.slots[0]
        target = slot.received + 10
        lumas = []  # the mean luma of every switch frame the customer's slot held
        while slot.received < target:
            version = slot.version
            assert await slot.wait_newer(version, timeout=10), "no frame after the switch"
            lumas.append(float(frame_planes(slot.latest.frame)[0].mean()))
        frame = slot.latest.frame
        tiles = {t.name: t.content for t in compute_layout(size, "screen", {AGENT, SCREEN})}
        assert mean_yuv(frame, tiles[SCREEN])[0] > 150  # the light page
        pip = tiles[AGENT]
        pip_band = type(pip)(pip.x, pip.y + pip.height * 3 // 4, pip.width, pip.height // 4)
        assert mean_yuv(frame, pip_band)[2] > 170  # the camera's red band, shrunk into the PiP
        assert read_stamp(frame) is not None  # the camera's stamp is carried through the compositor
        assert customer.sender.getTransceivers() == transceivers

        # No black frame at any point of the switch.
        y = frame_planes(frame)[0]
        assert y.mean() > 40
        assert min(lumas) > 40, lumas


async def test_agent_camera_ending_freezes_its_tile_and_the_output_keeps_flowing():
    compositor = CompositorTrack(size="360p", layout="agent", agent_name="Ada", fps=15)
    camera = TestCardTrack(640, 360, fps=15)
    agent = LoopbackCall([camera], into=[compositor.slot(AGENT)], label="agent")
    customer = LoopbackCall([compositor], label="customer")
    async with agent, customer:
        await wait_for(lambda: compositor.slot(AGENT).received >= 3)
        camera.stop()  # the camera stalls: no more frames, but the track has not ended
        before = customer.slots[0].received
        await customer.wait_frames(before + 5)  # the compositor's clock keeps the output going
        assert compositor.clock_frames > 0
        assert frame_planes(customer.slots[0].latest.frame)[0].std() > 10  # the frozen card, not a flat frame
        # The agent's peer goes away: the remote track ends, the tile stays frozen, output flows on.
        await agent.sender.close()
        await wait_for(lambda: compositor.slot(AGENT).ended, timeout=5)
        before = customer.slots[0].received
        await customer.wait_frames(before + 3)
        assert compositor.slot(AGENT).present
    assert all(not d.running for d in agent.drains + customer.drains)
    current = asyncio.current_task()
    leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not [t for t in leftovers if "drain" in t.get_name()]
    assert np.isfinite(compositor.receipt.summary()["compose"]["p95"])
