"""Suite "compose": the compositor against an FFmpeg filter graph, same layout, same inputs, same run.

Three 720p inputs into a 720p frame as in a real call: the agent's camera changes
every frame, the shared screen at 5 fps (every sixth frame), the avatar every
frame. Layout "screen": the screen full frame, agent and avatar picture-in-picture.
The filter graph (buffer x3 -> scale x2 -> overlay x2 -> buffersink, yuv420p) is
what a straightforward server would run; it redoes every step for every frame.
"""

from __future__ import annotations

import asyncio
import time

import av
import av.filter
import numpy as np

from benchmarks.progress import progress
from media.compositor import CompositorTrack
from media.layout import AGENT, AVATAR, SCREEN, SIZES, compute_layout
from media.sources import ScreenTrack, TestCardTrack

SCREEN_EVERY = 6  # 30 fps camera, 5 fps screen


async def _inputs(count: int) -> list[tuple[av.VideoFrame, av.VideoFrame, av.VideoFrame | None]]:
    """Pre-rendered input frames (camera, avatar, screen-or-None when unchanged), so sources cost nothing."""
    camera = TestCardTrack(1280, 720, paced=False, label="agent")
    avatar = TestCardTrack(1280, 720, paced=False, label="avatar", tint=(160, 40, 40))
    screen = ScreenTrack(1280, 720, paced=False)
    frames = []
    for i in range(count):
        frames.append(
            (await camera.recv(), await avatar.recv(), await screen.recv() if i % SCREEN_EVERY == 0 else None)
        )
    return frames


def _graph():
    tiles = {t.name: t.content for t in compute_layout(SIZES["720p"], "screen", {AGENT, SCREEN, AVATAR})}
    graph = av.filter.Graph()
    graph.threads = 1  # the same one core the compositor gets
    tb = "1/90000"
    src_screen = graph.add_buffer(width=1280, height=720, format="yuv420p", time_base=tb)
    src_agent = graph.add_buffer(width=1280, height=720, format="yuv420p", time_base=tb)
    src_avatar = graph.add_buffer(width=1280, height=720, format="yuv420p", time_base=tb)
    a, v = tiles[AGENT], tiles[AVATAR]
    scale_agent = graph.add("scale", f"{a.width}:{a.height}")
    scale_avatar = graph.add("scale", f"{v.width}:{v.height}")
    over1 = graph.add("overlay", f"x={a.x}:y={a.y}:format=yuv420:eof_action=repeat")
    over2 = graph.add("overlay", f"x={v.x}:y={v.y}:format=yuv420:eof_action=repeat")
    sink = graph.add("buffersink")
    src_agent.link_to(scale_agent)
    src_avatar.link_to(scale_avatar)
    src_screen.link_to(over1, 0, 0)
    scale_agent.link_to(over1, 0, 1)
    over1.link_to(over2, 0, 0)
    scale_avatar.link_to(over2, 0, 1)
    over2.link_to(sink)
    graph.configure()
    return graph, src_screen, src_agent, src_avatar, sink


def _p(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3)


def run(quick: bool) -> dict:
    """Compose ``n`` frames both ways, interleaved so both see the same machine load."""
    n = 300 if quick else 3000
    inputs = asyncio.run(_inputs(min(n, 300)))
    compositor = CompositorTrack(size="720p", layout="screen", agent_name="Agent")
    graph, src_screen, src_agent, src_avatar, sink = _graph()
    ours, ffmpeg = [], []
    screen_frame = None
    for i in progress(range(n), desc="compose", total=n):
        camera, avatar, screen = inputs[i % len(inputs)]
        pts = i * 3000
        # Ours: the slots get the new frames (as the drains would), then one compose.
        compositor.slot(AGENT).put(camera)
        compositor.slot(AVATAR).put(avatar)
        if screen is not None:  # every SCREEN_EVERY-th frame (len(inputs) is a multiple of it)
            screen_frame = screen
            compositor.slot(SCREEN).put(screen_frame)
        started = time.perf_counter()
        out = compositor.compose()
        ours.append((time.perf_counter() - started) * 1000)
        assert out.width == 1280
        # FFmpeg: every input pushed every frame (a graph has no notion of "unchanged").
        started = time.perf_counter()
        for src, frame in ((src_screen, screen_frame), (src_agent, camera), (src_avatar, avatar)):
            frame.pts = pts
            src.push(frame)
        out = sink.pull()
        ffmpeg.append((time.perf_counter() - started) * 1000)
        assert out.width == 1280
    warm = max(10, n // 50)
    ours, ffmpeg = ours[warm:], ffmpeg[warm:]
    summary = {
        "frames": len(ours),
        "compose_p50_ms": _p(ours, 50),
        "compose_p95_ms": _p(ours, 95),
        "ffmpeg_p50_ms": _p(ffmpeg, 50),
        "ffmpeg_p95_ms": _p(ffmpeg, 95),
    }
    summary["ratio"] = round(summary["compose_p95_ms"] / summary["ffmpeg_p95_ms"], 3)
    return summary
