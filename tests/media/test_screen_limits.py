"""The server's own cap on the screen tile (media.screen_limits): pure decisions, then a real room."""

from __future__ import annotations

import asyncio

import av
import cv2
import numpy as np
import pytest

from media.browser import BrowserPeer
from media.layout import AGENT, SCREEN, SIZES, compute_layout
from media.planes import frame_planes
from media.room import Room
from media.screen_limits import FpsGate, LimitedSlot, ScreenLimits, detail_size, fit_planes
from media.sources import ScreenTrack, TestCardTrack
from media.tracks import FrameSlot
from tests.media.test_room import wait_for

# ------------------------------------------------------------------ pure


def taken(gate: FpsGate, times: list[float]) -> list[float]:
    return [t for t in times if gate.admit(t)]


def test_no_cap_takes_every_frame():
    gate = FpsGate()
    assert taken(gate, [i / 30 for i in range(30)]) == [i / 30 for i in range(30)]


@pytest.mark.parametrize(("source_fps", "cap"), [(30, 5), (30, 15), (60, 5), (25, 10), (30, 7)])
def test_a_cap_takes_at_most_its_rate_and_close_to_it(source_fps, cap):
    gate = FpsGate(cap)
    seconds = 10
    frames = taken(gate, [i / source_fps for i in range(source_fps * seconds)])
    assert cap * seconds * 0.9 <= len(frames) <= cap * seconds + 1
    # Evenly: no two frames taken closer than the source's own interval.
    assert min(np.diff(frames)) >= 1 / source_fps - 1e-9


def test_a_cap_at_the_sources_own_rate_survives_arrival_jitter():
    rng = np.random.default_rng(1)
    times = np.arange(150) / 15 + rng.uniform(-0.01, 0.01, 150)  # 15 fps, +-10 ms
    assert len(taken(FpsGate(15), list(times))) >= 148


def test_after_a_pause_the_gate_does_not_burst_to_catch_up():
    gate = FpsGate(5)
    assert gate.admit(0.0)
    later = [10 + i / 30 for i in range(30)]  # 10 s of nothing, then 1 s at 30 fps
    assert len(taken(gate, later)) <= 6


def test_a_new_cap_starts_from_the_next_frame():
    gate = FpsGate(5)
    assert gate.admit(0.0) and not gate.admit(0.05)
    gate.reset(None)
    assert gate.admit(0.06) and gate.admit(0.07)
    gate.reset(15)
    assert gate.admit(0.08) and not gate.admit(0.09)


def test_detail_size_is_scale_of_the_tile_never_more_than_the_source():
    assert detail_size((1280, 720), (640, 360), 1.0) is None
    assert detail_size((1280, 720), (640, 360), 0.5) == (320, 180)
    assert detail_size((640, 360), (960, 540), 0.5) == (480, 270)
    assert detail_size((320, 180), (960, 540), 0.5) is None  # already that small: drawn as it is
    w, h = detail_size((1280, 720), (481, 271), 0.5)
    assert w % 2 == 0 and h % 2 == 0


def text_planes(width: int, height: int):
    y = np.full((height, width), 225, np.uint8)
    for row in range(10):
        at = (10, 30 + row * 30)
        cv2.putText(y, "Order #48213 shipped 19.99", at, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 30, 1)
    u = np.full((height // 2, width // 2), 128, np.uint8)
    return y, u, u.copy()


def sharpness(y: np.ndarray) -> float:
    """High-frequency energy: the mean absolute Laplacian."""
    return float(np.abs(cv2.Laplacian(y.astype(np.float32), cv2.CV_32F)).mean())


def test_fit_planes_keeps_the_tile_size_and_half_scale_softens_it():
    planes = text_planes(640, 360)
    full = fit_planes(planes, 640, 360, ({}, {}, {}))
    assert full[0] is planes[0]  # the source's own size: no work at all
    half = fit_planes(planes, 640, 360, ({}, {}, {}), 0.5)
    assert [p.shape for p in half] == [(360, 640), (180, 320), (180, 320)]
    assert sharpness(half[0]) < 0.7 * sharpness(full[0])
    smaller = fit_planes(planes, 480, 270, ({}, {}, {}), 0.5)
    assert [p.shape for p in smaller] == [(270, 480), (135, 240), (135, 240)]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_the_screen_slot_drops_frames_past_the_cap_and_a_new_scale_redraws():
    clock = Clock()
    limits = ScreenLimits(clock)
    slot = limits.slot(SCREEN)
    frame = av.VideoFrame(64, 36, "yuv420p")
    limits.set(5.0)
    for i in range(30):
        clock.now = i / 30
        slot.put(frame)
    taken = slot.version
    assert 5 <= taken <= 6 and taken + slot.limited == 30
    limits.set(5.0, 0.5)  # a new scale: the current picture again, as a new version
    assert slot.version == taken + 1 and limits.scale_of(SCREEN) == 0.5 and limits.scale_of(AGENT) == 1.0
    slot.end()
    limits.set(None, 1.0)
    assert slot.version == taken + 2 and not slot.present  # an ended screen stays hidden
    with pytest.raises(ValueError):
        limits.set(None, 0.0)
    assert isinstance(slot, LimitedSlot) and isinstance(slot, FrameSlot)


# ------------------------------------------------------------------ a real room


async def rate(slot: FrameSlot, seconds: float) -> float:
    """New frames a second the slot took over ``seconds``."""
    start = slot.version
    await asyncio.sleep(seconds)
    return (slot.version - start) / seconds


@pytest.fixture
async def room():
    room = Room(label="limits", agent_name="Ada", size="360p", fps=30)
    yield room
    await room.close()


async def test_a_capped_screen_takes_five_frames_a_second_and_the_camera_keeps_its_rate(room):
    agent = BrowserPeer.agent(
        camera=TestCardTrack(320, 180, fps=30, label=""), screen=ScreenTrack(640, 360, fps=30)
    )
    async with agent:
        await agent.negotiate(room.answer)
        await room.screen_shared(True)
        screen, camera = room.compositor.slot(SCREEN), room.compositor.slot(AGENT)
        await wait_for(lambda: screen.version > 10 and camera.version > 10)
        await asyncio.sleep(1.0)  # past the first seconds' ramp
        free_screen, free_camera = await asyncio.gather(rate(screen, 2.0), rate(camera, 2.0))

        room.set_screen_limits(5, 1.0)
        capped_screen, capped_camera = await asyncio.gather(rate(screen, 3.0), rate(camera, 3.0))
        print(f"\nscreen {free_screen:.1f} -> {capped_screen:.1f}/s", end=", ")
        print(f"camera {free_camera:.1f} -> {capped_camera:.1f}/s")
        assert 2 <= capped_screen <= 8
        assert screen.limited > 0
        assert capped_camera >= 0.6 * free_camera  # the agent's face is never limited

        room.set_screen_limits(None, 1.0)
        restored = await rate(screen, 2.0)
        assert restored >= 2 * capped_screen and restored >= 0.6 * free_screen


def screen_sharpness(frame, tile) -> float:
    """High-frequency energy of the screen tile, away from the agent's picture-in-picture."""
    y = frame_planes(frame)[0]
    return sharpness(y[tile.y : tile.y + tile.height * 2 // 3, tile.x : tile.x + tile.width * 2 // 3])


async def mean_sharpness(customer: BrowserPeer, tile, frames: int = 10) -> float:
    values = []
    for _ in range(frames):
        seen = customer.video(0).count
        await wait_for(lambda seen=seen: customer.video(0).count > seen)
        values.append(screen_sharpness(customer.video(0).latest, tile))
    return float(np.median(values))


async def test_half_scale_softens_the_screen_tile_and_keeps_the_composite_size(room):
    agent = BrowserPeer.agent(
        camera=TestCardTrack(320, 180, fps=30, label=""), screen=ScreenTrack(640, 360, fps=15)
    )
    customer = BrowserPeer.customer()
    async with agent, customer:
        await agent.negotiate(room.answer)
        await customer.negotiate(room.answer)
        await customer.video(0).wait(10)
        await room.screen_shared(True)
        tile = {t.name: t.content for t in compute_layout(SIZES["360p"], "screen", {AGENT, SCREEN})}[SCREEN]
        await wait_for(
            lambda: (
                customer.video(0).latest.width == 640
                and frame_planes(customer.video(0).latest)[0][tile.y + 60, 320] > 150
            )
        )
        await asyncio.sleep(1.5)  # the encoder's bitrate ramps up: sharpness settles
        sharp = await mean_sharpness(customer, tile)

        room.set_screen_limits(None, 0.5)
        await asyncio.sleep(1.0)
        soft = await mean_sharpness(customer, tile)
        latest = customer.video(0).latest
        assert (latest.width, latest.height) == (640, 360)
        print(f"\nscreen tile sharpness {sharp:.2f} -> {soft:.2f} at half scale")
        assert soft < 0.75 * sharp

        room.set_screen_limits(None, 1.0)
        await asyncio.sleep(1.0)
        assert await mean_sharpness(customer, tile) > 0.85 * sharp
