"""CompositorTrack: pixels where the layout puts them, work done once, fresh frames, pacing by the primary."""

import asyncio
import fractions

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

import media.screen_limits as screen_limits_module
from media.compositor import CompositorTrack
from media.layout import AGENT, AVATAR, SCREEN, SIZES, compute_layout
from media.planes import frame_planes
from media.stamp import Stamp, read_stamp, write_stamp
from media.tile_painter import BACKGROUND_YUV

AGENT_YUV = (81, 90, 240)  # red
SCREEN_YUV = (210, 16, 146)  # yellow
AVATAR_YUV = (41, 240, 110)  # blue


def flat(yuv, width=1280, height=720) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane, value in zip(frame_planes(frame), yuv, strict=True):
        plane[:] = value
    return frame


def yuv_at(frame: av.VideoFrame, x: int, y: int) -> tuple[int, int, int]:
    py, pu, pv = frame_planes(frame)
    return int(py[y, x]), int(pu[y // 2, x // 2]), int(pv[y // 2, x // 2])


def centre(rect):
    return rect.x + rect.width // 2, rect.y + rect.height // 2


def close(a, b, tol=3):
    return all(abs(p - q) <= tol for p, q in zip(a, b, strict=True))


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_screen_layout_puts_each_input_where_the_layout_says():
    comp = CompositorTrack(size="720p", layout="screen")
    comp.slot(AGENT).put(flat(AGENT_YUV))
    comp.slot(SCREEN).put(flat(SCREEN_YUV, 1920, 1080))
    comp.slot(AVATAR).put(flat(AVATAR_YUV, 640, 360))
    out = comp.compose()
    assert (out.width, out.height, out.format.name) == (1280, 720, "yuv420p")
    tiles = {t.name: t.content for t in compute_layout(SIZES["720p"], "screen", {AGENT, SCREEN, AVATAR})}
    assert close(yuv_at(out, *centre(tiles[AGENT])), AGENT_YUV)
    assert close(yuv_at(out, *centre(tiles[AVATAR])), AVATAR_YUV)
    assert close(yuv_at(out, 100, 400), SCREEN_YUV)


def test_letterbox_bars_use_the_background():
    comp = CompositorTrack(size="720p", layout="agent")
    comp.slot(AGENT).put(flat(AGENT_YUV, 640, 480))  # 4:3 in 16:9: pillarboxed
    out = comp.compose()
    assert close(yuv_at(out, 640, 360), AGENT_YUV)
    assert yuv_at(out, 20, 360) == BACKGROUND_YUV
    assert yuv_at(out, 1260, 360) == BACKGROUND_YUV


def test_placeholder_when_the_agent_camera_is_absent_and_never_an_empty_frame():
    comp = CompositorTrack(size="360p", layout="agent", agent_name="Ada Lovelace")
    out = comp.compose()
    y = frame_planes(out)[0]
    assert y.std() > 5  # a disc and initials, not a flat colour
    assert not close(yuv_at(out, 320, 180), (16, 128, 128), tol=10)
    # An avatar layout with no avatar yet shows the agent (placeholder) too.
    comp.set_layout("avatar")
    comp.fade_s = 0
    assert frame_planes(comp.compose())[0].std() > 5
    # With the camera on, the camera replaces the placeholder.
    comp.set_layout("agent")
    comp.slot(AGENT).put(flat(AGENT_YUV, 640, 360))
    comp._fade_from = None
    assert close(yuv_at(comp.compose(), 320, 180), AGENT_YUV)


def test_resize_runs_once_per_input_frame(monkeypatch):
    calls = []
    real = screen_limits_module.scale_plane  # the compositor's resizes go through media.screen_limits

    def spy(plane, width, height, scratch=None, **kwargs):
        calls.append((width, height))
        return real(plane, width, height, scratch, **kwargs)

    monkeypatch.setattr(screen_limits_module, "scale_plane", spy)
    comp = CompositorTrack(size="720p", layout="screen")
    comp.slot(SCREEN).put(flat(SCREEN_YUV))
    comp.slot(AGENT).put(flat(AGENT_YUV))
    comp.compose()
    assert len(calls) == 3  # agent's three planes; the screen fits as is
    comp.compose()
    comp.compose()
    assert len(calls) == 3  # nothing changed, nothing resized
    comp.slot(SCREEN).put(flat((100, 128, 128)))  # the screen under the PiP changed
    out = comp.compose()
    assert len(calls) == 3  # the agent's tile is repainted from its cached resize
    tile = compute_layout(SIZES["720p"], "screen", {AGENT, SCREEN})[1]
    assert close(yuv_at(out, *centre(tile.content)), AGENT_YUV)
    comp.slot(AGENT).put(flat(AGENT_YUV))
    comp.compose()
    assert len(calls) == 6


def test_outputs_are_fresh_frames_never_rewritten_and_never_tagged_keyframes():
    comp = CompositorTrack(size="360p", layout="agent")
    keyframe = flat(AGENT_YUV, 640, 360)
    keyframe.pict_type = av.video.frame.PictureType.I
    comp.slot(AGENT).put(keyframe)
    first = comp.compose()
    first_pts = first.pts
    assert first.pict_type == av.video.frame.PictureType.NONE
    before = first.to_ndarray().copy()
    seen = {id(first)}
    held = []  # kept alive, so an id cannot be recycled and every buffer is still in use
    values = (30, 60, 90, 120, 150, 180, 210, 240, 50, 70)  # more than the pool holds
    for value in values:
        comp.slot(AGENT).put(flat((value, 128, 128), 640, 360))
        frame = comp.compose()
        assert id(frame) not in seen
        seen.add(id(frame))
        held.append(frame)
        assert frame.pict_type == av.video.frame.PictureType.NONE
        assert yuv_at(frame, 320, 180)[0] == value
    # A frame still held (by an encoder, say) is never reused as a later canvas.
    assert np.array_equal(first.to_ndarray(), before)
    assert [yuv_at(frame, 320, 180)[0] for frame in held] == list(values)
    assert first.pts == first_pts  # nor its timestamp


def test_pts_increase_strictly():
    clock = FakeClock()
    comp = CompositorTrack(size="360p", clock=clock)
    pts = []
    for step in (0, 0.033, 0.033, 0.0, 0.1):
        clock.now += step
        pts.append(comp.compose().pts)
    assert pts == sorted(set(pts))
    assert pts[1] - pts[0] == round(0.033 * 90000)  # 90 kHz, on the clock


def camera_frame(rtp_timestamp: int) -> av.VideoFrame:
    """A decoded camera frame: its pts is its RTP timestamp (90 kHz), as aiortc's decoders set it."""
    frame = flat(AGENT_YUV, 640, 360)
    frame.pts, frame.time_base = rtp_timestamp, fractions.Fraction(1, 90000)
    return frame


def test_fresh_composites_are_spaced_as_the_camera_captured_them_not_as_they_came():
    clock = FakeClock()
    comp = CompositorTrack(size="360p", layout="agent", clock=clock)
    agent, step = comp.slot(AGENT), 3000  # the camera's 33.3 ms at 90 kHz
    pts = []
    # On time, then one 50 ms late and the next right behind it (bunched), then on time again.
    for captured, arrives in ((0, 0.0), (1, 0.0333), (2, 0.1167), (3, 0.1200), (4, 0.1333)):
        clock.now = 100.0 + arrives
        agent.put(camera_frame(7_000 + captured * step))
        pts.append(comp.compose().pts)
    assert pts[0] == round(100.0 * 90000)  # anchored to the clock
    # Composed 3 ms apart, stamped 33 ms apart: a browser showing one frame a refresh shows both.
    assert [b - a for a, b in zip(pts, pts[1:], strict=False)] == [step] * 4
    # A repeat (no new camera frame) is stamped on the clock, after the last.
    clock.now += 0.1
    assert comp.compose().pts == round(clock.now * 90000)


def test_a_camera_whose_timestamps_jump_is_anchored_again_to_the_clock():
    clock = FakeClock()
    comp = CompositorTrack(size="360p", layout="agent", clock=clock)
    agent = comp.slot(AGENT)
    agent.put(camera_frame(1_000))
    first = comp.compose().pts
    clock.now += 0.033
    agent.put(camera_frame(900_000_000))  # another camera (a swapped track): its own clock
    second = comp.compose().pts
    assert second == round(clock.now * 90000) and second > first
    clock.now += 0.010
    agent.put(camera_frame(1_000))  # and back to an older timestamp: the timeline never goes back
    assert comp.compose().pts > second


def test_non_yuv420p_input_is_converted_once():
    comp = CompositorTrack(size="360p", layout="agent", fade_ms=0)
    rgb = av.VideoFrame.from_ndarray(np.full((360, 640, 3), (255, 0, 0), np.uint8), format="rgb24")
    comp.slot(AGENT).put(rgb)
    y, u, v = yuv_at(comp.compose(), 320, 180)
    assert v > 200 and y < 100  # red
    converted = comp.painter._converted[AGENT][1]
    # A new geometry repaints the same input frame at another size: resized, not converted again.
    comp.slot(SCREEN).put(flat(SCREEN_YUV, 640, 360))
    comp.set_layout("screen")
    out = comp.compose()
    assert comp.painter._converted[AGENT][1] is converted
    pip = compute_layout(SIZES["360p"], "screen", {AGENT, SCREEN})[1].content
    y, u, v = yuv_at(out, *centre(pip))
    assert v > 200 and y < 100  # still red, in the picture-in-picture


def test_layout_switch_cross_fades_and_never_shows_black():
    clock = FakeClock()
    comp = CompositorTrack(size="720p", layout="agent", fade_ms=200, clock=clock)
    comp.slot(AGENT).put(flat(AGENT_YUV))
    comp.slot(SCREEN).put(flat(SCREEN_YUV))
    before = comp.compose()
    assert close(yuv_at(before, 100, 100), AGENT_YUV)
    comp.set_layout("screen")
    lumas = []
    for _ in range(6):
        frame = comp.compose()
        lumas.append(yuv_at(frame, 100, 100)[0])
        clock.now += 0.05
    # From the agent's red (81) towards the screen's yellow (210), monotonically, no dip to black.
    assert lumas[0] < 100 and lumas[-1] == SCREEN_YUV[0]
    assert lumas == sorted(lumas) and min(lumas) >= AGENT_YUV[0] - 2
    with pytest.raises(ValueError):
        comp.set_layout("mosaic")


def test_ended_screen_hides_and_ended_camera_freezes():
    comp = CompositorTrack(size="720p", layout="screen", fade_ms=0)
    comp.slot(AGENT).put(flat(AGENT_YUV))
    comp.slot(SCREEN).put(flat(SCREEN_YUV))
    assert close(yuv_at(comp.compose(), 100, 100), SCREEN_YUV)
    comp.slot(SCREEN).end()
    assert close(yuv_at(comp.compose(), 100, 100), AGENT_YUV)  # agent reflows to full frame
    comp.slot(AGENT).end()
    assert close(yuv_at(comp.compose(), 100, 100), AGENT_YUV)  # frozen, still shown


def test_primary_stamp_is_carried_into_the_output():
    comp = CompositorTrack(size="720p", layout="screen")
    camera = flat(AGENT_YUV)
    write_stamp(camera, Stamp(123456, 789))
    comp.slot(AGENT).put(camera)  # shown shrunk to a PiP, where its own stamp would be unreadable
    comp.slot(SCREEN).put(flat(SCREEN_YUV))
    assert read_stamp(comp.compose()) == Stamp(123456, 789)
    assert "slot_wait" in comp.receipt.summary() and "compose" in comp.receipt.summary()


async def test_recv_emits_on_the_primary_frame_and_falls_back_to_the_clock_when_it_stalls():
    comp = CompositorTrack(size="360p", layout="agent", fps=10)
    agent = comp.slot(AGENT)
    agent.put(flat(AGENT_YUV, 640, 360))
    await comp.recv()  # the first frame goes out at once
    pending = asyncio.ensure_future(comp.recv())
    await asyncio.sleep(0.08)  # less than the 200 ms stall limit: still waiting for the camera
    assert not pending.done()
    agent.put(flat((120, 128, 128), 640, 360))
    frame = await asyncio.wait_for(pending, 1)
    assert yuv_at(frame, 320, 180)[0] == 120
    assert comp.clock_frames == 0
    # Camera stalls: the clock takes over and frames keep coming, frozen on the last picture.
    for _ in range(3):
        frame = await asyncio.wait_for(comp.recv(), 1)
        assert yuv_at(frame, 320, 180)[0] == 120
    assert comp.clock_frames == 3
    comp.stop()
    with pytest.raises(MediaStreamError):
        await comp.recv()


async def test_attach_detach_and_close_own_the_drains():
    from media.sources import TestCardTrack

    comp = CompositorTrack(size="360p", layout="agent", agent_name="Ada")
    first, second = TestCardTrack(640, 360, paced=False), TestCardTrack(640, 360, paced=False)
    drain = await comp.attach(AGENT, first, label="call-1")
    await comp.slot(AGENT).wait_newer(1, timeout=5)
    await comp.attach(AGENT, second, label="call-1")  # a replaced camera: the old drain stops
    assert not drain.running and comp.drains[AGENT].running
    assert comp.slot(AGENT).present  # no gap while the new track starts
    await comp.detach(AGENT)
    assert not comp.slot(AGENT).present and AGENT not in comp.drains
    await comp.attach(SCREEN, TestCardTrack(640, 360, paced=False))
    screen_drain = comp.drains[SCREEN]
    await comp.close()
    await comp.close()
    assert not screen_drain.running and comp.readyState == "ended"
    assert not [t for t in asyncio.all_tasks() if "drain" in t.get_name() and not t.done()]
    with pytest.raises(MediaStreamError):
        await comp.recv()


async def test_a_slow_camera_is_followed_not_padded_with_repeats():
    comp = CompositorTrack(size="360p", layout="agent", fps=30)
    agent = comp.slot(AGENT)
    sent = asyncio.Event()

    async def camera_at_8_fps():
        for n in range(30):
            agent.put(flat((60 + n, 128, 128), 640, 360))
            sent.set()
            await asyncio.sleep(0.125)

    feeding = asyncio.ensure_future(camera_at_8_fps())
    try:
        await sent.wait()
        for _ in range(20):  # the compositor learns the camera's cadence
            await asyncio.wait_for(comp.recv(), 1)
        repeats_before = comp.clock_frames
        for _ in range(8):
            await asyncio.wait_for(comp.recv(), 1)
        assert comp.clock_frames == repeats_before  # one composite per camera frame, no padding
    finally:
        feeding.cancel()
        await asyncio.wait({feeding})
        comp.stop()


async def test_a_frame_soon_after_a_late_one_goes_out_at_once_and_the_rate_stays_capped():
    comp = CompositorTrack(size="360p", layout="agent", fps=2)  # an interval of 0.5 s
    agent, loop = comp.slot(AGENT), asyncio.get_running_loop()
    agent.put(flat((60, 128, 128), 640, 360))
    await comp.recv()
    agent.put(flat((70, 128, 128), 640, 360))  # the next frame right behind a late one
    started = loop.time()
    assert yuv_at(await asyncio.wait_for(comp.recv(), 1), 320, 180)[0] == 70
    assert loop.time() - started < 0.15  # not held half an interval (0.25 s) after the last one
    agent.put(flat((80, 128, 128), 640, 360))  # a third within one interval: held to two an interval
    assert yuv_at(await asyncio.wait_for(comp.recv(), 2), 320, 180)[0] == 80
    assert loop.time() - started > 0.35
    comp.stop()
