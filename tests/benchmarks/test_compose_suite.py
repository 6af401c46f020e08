"""The compose suite, tiny: its JSON, and that its FFmpeg baseline is configured like the compositor."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json

import cv2
import numpy as np

from benchmarks import compose
from media.compositor import CompositorTrack
from media.layout import AGENT, AVATAR, SCREEN, SIZES, compute_layout
from media.planes import frame_planes

REQUIRED = {
    "frames",
    "compose_p50_ms",
    "compose_p95_ms",
    "ffmpeg_p50_ms",
    "ffmpeg_p95_ms",
    "ratio",
    "ratio_area",
    "ffmpeg_area_p95_ms",
    "ffmpeg_fast_bilinear_p95_ms",
    "ffmpeg_bicubic_p95_ms",
    "samples_expected",
    "samples_measured",
    "ratio_area_cpu",
    "compose_cpu_p95_ms",
    "ffmpeg_area_cpu_p95_ms",
}


def test_a_tiny_run_reports_every_figure_and_restores_opencv_threads():
    threads = cv2.getNumThreads()
    summary = compose.run(quick=True, frames=24)
    json.dumps(summary)
    assert REQUIRED <= summary.keys()
    assert summary["samples_expected"] == summary["samples_measured"] == summary["frames"] > 0
    assert summary["opencv_threads"] == 1  # read back from OpenCV during the run
    assert summary["ffmpeg_threads"] == {flags: 1 for flags in compose.SCALERS}
    assert cv2.getNumThreads() == threads  # pinned for the run only
    assert summary["ratio_area"] == round(summary["compose_p95_ms"] / summary["ffmpeg_area_p95_ms"], 3)
    cpu = summary["compose_cpu_p95_ms"] / summary["ffmpeg_area_cpu_p95_ms"]
    assert summary["ratio_area_cpu"] == round(cpu, 3)
    # A thread's CPU time never exceeds the wall clock over the same span (both ran on this thread).
    assert summary["compose_cpu_p50_ms"] <= summary["compose_p50_ms"] * 1.05 + 0.02
    assert set(summary["targets"]) == {"ratio_area"}


def test_the_area_graph_draws_the_compositors_picture_and_the_others_do_not():
    """Like for like: FFmpeg's box filter (area) gives the compositor's tiles almost to the bit;
    bicubic and fast_bilinear are other filters (what they are reported beside it for)."""
    inputs = asyncio.run(compose._inputs(compose.SCREEN_EVERY))
    camera, avatar, screen = inputs[0]
    assert screen is not None
    compositor = CompositorTrack(size="720p", layout="screen", agent_name="Agent")
    for name, frame in ((AGENT, camera), (AVATAR, avatar), (SCREEN, screen)):
        compositor.slot(name).put(frame)
    ours = frame_planes(compositor.compose())[0].astype(int)
    tile = {t.name: t.content for t in compute_layout(SIZES["720p"], "screen", {AGENT, SCREEN, AVATAR})}[
        AGENT
    ]
    region = (slice(tile.y, tile.bottom), slice(tile.x, tile.right))
    differences = {}
    for flags in compose.SCALERS:
        graph = compose.Graph(flags)
        assert graph.graph.threads == 1
        theirs = frame_planes(graph.compose(screen, camera, avatar, 0))[0].astype(int)
        differences[flags] = float(np.abs(ours[region] - theirs[region]).mean())
    assert differences["area"] < 0.05, differences
    assert differences["bicubic"] > 5 * differences["area"] and differences["fast_bilinear"] > 0.5, (
        differences
    )


def test_each_competitor_follows_each_other_equally_often_across_block_edges_too():
    """A review: with the orders in itertools' sequence, a block's first competitor followed the
    block before's last unevenly (the compositor itself 20 times in 500 blocks, two graphs never)."""
    names = ("ours", *compose.SCALERS)
    cycle = compose.order_cycle(names)
    assert sorted(cycle) == sorted(itertools.permutations(names))  # every order, once
    # The competitors in the order they compose, over two cycles (the second's first block
    # follows the first's last, as in a run).
    turns = [name for order in cycle + cycle for name in order]
    followed = collections.Counter(zip(turns, turns[1:], strict=False))
    pairs = {(a, b) for a in names for b in names}
    whole_cycles = {pair: followed[pair] for pair in pairs}
    assert all(whole_cycles[a, a] == 0 for a in names), whole_cycles  # nobody starts a block warm
    # 2 cycles minus the one edge after the last block: 16 each, the wrapping pair one fewer.
    last, first = cycle[-1][-1], cycle[0][0]
    expected = {(a, b): (0 if a == b else 16 - ((a, b) == (last, first))) for a, b in pairs}
    assert whole_cycles == expected
    for quick in (True, False):
        assert compose.default_frames(quick) % (compose.BLOCK * len(cycle)) == 0
