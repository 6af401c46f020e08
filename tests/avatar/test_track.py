"""AvatarTrack as a compositor input: pacing, stamps, and the avatar -> agent handoff over real peers."""

from __future__ import annotations

import asyncio

import av
import numpy as np

from media.avatar.engine import AvatarEngine, BuiltinEngine
from media.avatar.spec import load_spec
from media.avatar.track import AvatarTrack
from media.compositor import CompositorTrack
from media.layout import AGENT, AVATAR
from media.stamp import read_stamp
from media.testing import LoopbackCall, TestCardTrack


async def test_track_is_paced_stamped_and_shows_script_captions() -> None:
    track = AvatarTrack("aurora", stamp="render", fps=30)
    assert isinstance(track.engine, AvatarEngine)
    loop = asyncio.get_running_loop()
    started = loop.time()
    plain = await track.recv()
    track.controller.submit("say Hello and welcome", track.now())
    frames = [await track.recv() for _ in range(9)]
    elapsed = loop.time() - started
    assert 0.25 < elapsed < 0.6  # ten frames at 30 fps
    assert [f.pts for f in frames] == [3000 * i for i in range(1, 10)]
    assert all(read_stamp(f) is not None for f in frames)
    box = track.engine.renderer.caption_box("Hello and welcome")

    def region(frame: av.VideoFrame) -> np.ndarray:
        return frame.to_ndarray(format="gray")[box.y0 : box.y1, box.x0 : box.x1].astype(int)

    assert np.abs(region(frames[-1]) - region(plain)).mean() > 10
    track.stop()


class EchoEngine:
    """An external engine in miniature: grey level follows the audio pushed in."""

    width, height = 320, 180

    def __init__(self) -> None:
        self.level = 0.0

    def push_audio(self, audio, t, sample_rate=None) -> None:
        self.level = float(np.abs(np.asarray(audio)).mean())

    def render(self, t: float) -> av.VideoFrame:
        frame = av.VideoFrame.from_ndarray(
            np.full((180, 320), int(16 + 200 * self.level), np.uint8), format="gray"
        )
        return frame.reformat(format="yuv420p")

    def interrupt(self, t: float) -> None:
        self.level = 0.0


async def test_an_external_engine_plugs_in_behind_the_same_track() -> None:
    engine = EchoEngine()
    assert isinstance(engine, AvatarEngine)
    assert isinstance(BuiltinEngine(load_spec("harbor"), width=640, height=360), AvatarEngine)
    track = AvatarTrack(engine=engine, fps=60)
    engine.push_audio(np.full(480, 0.5), track.now(), 48000)
    frame = await track.recv()
    assert frame.width == 320 and frame.to_ndarray(format="gray").mean() > 100
    track.stop()


async def test_switching_the_look_changes_the_picture() -> None:
    track = AvatarTrack("aurora", fps=60)
    before = (await track.recv()).to_ndarray(format="rgb24")
    track.set_spec(load_spec("harbor"))
    after = (await track.recv()).to_ndarray(format="rgb24")
    assert np.abs(before.astype(int) - after).mean() > 10
    track.stop()


def _is_black(frame: av.VideoFrame) -> bool:
    return frame.to_ndarray(format="gray").mean() < 30


async def test_avatar_to_agent_handoff_over_real_peers_has_no_black_frame() -> None:
    compositor = CompositorTrack(size="720p", layout="avatar", agent_name="Agent", fade_ms=250)
    avatar = AvatarTrack("aurora", fps=30)
    agent = TestCardTrack(1280, 720, fps=30, label="agent", tint=(230, 230, 40))
    await compositor.attach(AVATAR, avatar)
    await compositor.attach(AGENT, agent)
    background = np.array(load_spec("aurora").colors["background"][::-1], int)  # RGB
    async with LoopbackCall([compositor], label="customer") as customer:
        slot = await customer.wait_frames(5, timeout=15)
        seen: list[av.VideoFrame] = []
        version = slot.version
        loop = asyncio.get_running_loop()

        async def collect(seconds: float) -> None:
            nonlocal version
            end = loop.time() + seconds
            while loop.time() < end:
                if await slot.wait_newer(version, end - loop.time()):
                    version = slot.latest.version
                    seen.append(slot.latest.frame)

        await collect(0.6)
        avatar_frames = len(seen)
        # The avatar fills the frame: its backdrop colour in the top-left corner.
        corner = seen[-1].to_ndarray(format="rgb24")[40:120, 40:120].reshape(-1, 3).mean(axis=0)
        assert np.abs(corner - background).max() < 40
        avatar.controller.submit("say An agent is joining you now.", avatar.now())
        compositor.set_layout("agent")  # the handoff: no renegotiation
        await collect(1.5)
    await compositor.close()
    avatar.stop()
    agent.stop()
    after = seen[avatar_frames:]
    assert len(after) > 20
    assert not any(_is_black(f) for f in seen)
    # The agent's card has arrived: its yellow tint fills the lower band.
    band = after[-1].to_ndarray(format="rgb24")[600:700, 100:300].reshape(-1, 3).mean(axis=0)
    assert band[0] > 150 and band[1] > 150 and band[2] < 120
