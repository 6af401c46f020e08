"""``telepresence bench tune``: sweep the composite's size, frame rate, codec and bitrate on this machine.

Each sweep point is one short call through the real server path, in this process, as
the latency suite builds it: a browser-like agent peer (``media.browser.BrowserPeer``:
a stamped 720p camera at the point's frame rate, as the web client asks for, and a
5 fps 720p screen) -> ``media.room.Room`` at the point's size, codec and bitrate
ceiling, in the ``screen`` layout (the camera a picture-in-picture, its stamp carried:
a layout the server must compose and encode, not pass through) -> a browser-like
customer peer, whose decoded frames' stamps give glass-to-glass latency.

Points run one after another (they would compete for the cores otherwise), in rounds:
every point once per round, so a neighbour's burst of load spreads over the grid
instead of landing on one setting. A point's figures are medians over its rounds.
What meets the target and the TOML snippet: :mod:`benchmarks.tune_advice`.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.machine import load_average
from benchmarks.progress import progress
from benchmarks.tune_advice import SERVED, SERVED_KBPS, Figures, Point, advise
from media.browser import BrowserPeer, VideoSink
from media.peers import Bitrate
from media.room import Room
from media.sources import ScreenTrack, TestCardTrack
from media.stamp import read_stamp

# The web client's camera constraint (web_client/js/agent-call.js): the agent sends 720p.
CAMERA_SIZE = (1280, 720)


@dataclass(frozen=True)
class Plan:
    sizes: tuple[str, ...]
    fps: tuple[int, ...]
    codecs: tuple[str, ...]
    kbps: tuple[int, ...]
    warmup_s: float  # after the first frame: the start-up transient (keyframes, REMB) passes
    window_s: float
    rounds: int
    label: str

    def points(self) -> list[Point]:
        return [
            Point(size, fps, codec, kbps)
            for size, fps, codec, kbps in itertools.product(self.sizes, self.fps, self.codecs, self.kbps)
        ]


# 32 points x 2 rounds x ~8 s: about 9 minutes on the 2-core development machine.
FULL = Plan(
    sizes=("360p", "540p", "720p", "1080p"),
    fps=(15, 30),
    codecs=("VP8", "H264"),
    kbps=(1500, 3000),
    warmup_s=2.5,
    window_s=4.0,
    rounds=2,
    label="full",
)
# A smoke run of the method: 4 points, one round, well under a minute; at the ceiling serve
# runs, the only one whose points can be suggested.
QUICK = Plan(
    sizes=("360p", "720p"),
    fps=(30,),
    codecs=("VP8", "H264"),
    kbps=(SERVED_KBPS,),
    warmup_s=1.5,
    window_s=2.5,
    rounds=1,
    label="quick",
)


async def _sample(sink: VideoSink, seconds: float) -> tuple[list[float], int]:
    """Latencies (ms) of the stamped frames the customer decodes over ``seconds``, and all frames."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    latencies: list[float] = []
    frames = 0
    while (remaining := deadline - loop.time()) > 0:
        try:
            frame = await sink.next_frame(remaining)
        except TimeoutError:
            break
        frames += 1
        stamp = read_stamp(frame)
        if stamp is not None:
            latencies.append(float(stamp.age_ms()))
    return latencies, frames


async def measure_point(point: Point, warmup_s: float, window_s: float) -> dict[str, Any]:
    """One call at ``point``: latencies, frames, the room's per-stage receipt and the codec it used."""
    kbps = point.kbps * 1000
    room = Room(
        label=f"tune {point.label}",
        agent_name="Agent",
        size=point.size,
        fps=point.fps,
        codec=point.codec,
        # At the served ceiling this IS the range serve runs (start and floor too); other
        # ceilings change only the ceiling.
        bitrate=Bitrate(start=min(SERVED.start, kbps), min=min(SERVED.min, kbps), max=kbps),
    )
    try:
        room.set_layout("screen")
        camera = TestCardTrack(*CAMERA_SIZE, fps=point.fps, stamp=True, label="agent")
        agent = BrowserPeer.agent(camera=camera, screen=ScreenTrack(*CAMERA_SIZE, fps=5))
        async with agent, BrowserPeer.customer() as customer:
            await agent.negotiate(room.answer)
            await customer.negotiate(room.answer)
            sink = customer.video(0)
            await sink.wait(15)
            await asyncio.sleep(warmup_s)
            started = time.monotonic()
            latencies, frames = await _sample(sink, window_s)
            elapsed = time.monotonic() - started
            codec = customer.codec(0)
    finally:
        await room.close()
    return {
        "latencies": latencies,
        "frames": frames,
        "fps": frames / elapsed if elapsed > 0 else 0.0,
        "stages": room.compositor.receipt.summary(),
        "codec": codec,
    }


def _first(values: list[float]) -> float | None:
    return values[0] if values else None


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _figures(point: Point, runs: list[dict[str, Any]], window_s: float) -> Figures:
    """Medians over a point's rounds (p50, p95 and fps of each round), with the sample counts."""
    p50s = [p for run in runs if (p := _pct(run["latencies"], 50)) is not None]
    p95s = [p for run in runs if (p := _pct(run["latencies"], 95)) is not None]
    encode = [run["stages"]["encode"]["p95"] for run in runs if "encode" in run["stages"]]
    return Figures(
        point=point,
        p50_ms=_median(p50s),
        p95_ms=_median(p95s),
        fps_measured=round(statistics.median(run["fps"] for run in runs), 1),
        samples=sum(len(run["latencies"]) for run in runs),
        frames=sum(run["frames"] for run in runs),
        frames_expected=round(point.fps * window_s * len(runs)),
        encode_p95_ms=_median(encode),
        rounds=len(runs),
        codecs=sorted({run["codec"] for run in runs if run["codec"]}),
        errors=[run["error"] for run in runs if "error" in run],
    )


async def sweep(plan: Plan, target_ms: float) -> dict[str, Any]:
    """Every point of ``plan``, ``plan.rounds`` times; the advice and the figures behind it."""
    points = plan.points()
    runs: dict[Point, list[dict[str, Any]]] = {point: [] for point in points}
    load_start = load_average()
    started = time.monotonic()
    order = [point for _ in range(plan.rounds) for point in points]
    for point in progress(order, desc="tune", total=len(order)):
        try:
            run = await measure_point(point, plan.warmup_s, plan.window_s)
        except Exception as exc:  # one setting that cannot run (no first frame in time) is a verdict
            run = {"latencies": [], "frames": 0, "fps": 0.0, "stages": {}, "codec": None, "error": repr(exc)}
        runs[point].append(run)
    figures = [_figures(point, runs[point], plan.window_s) for point in points]
    summary = advise(figures, target_ms)
    summary.update(
        plan=plan.label,
        rounds=plan.rounds,
        window_s=plan.window_s,
        sweep_s=round(time.monotonic() - started, 1),
        load_avg_1m={"start": _first(load_start), "end": _first(load_average())},
        # For the bench writer's plots (stripped from the printed JSON): every point's latencies...
        samples={point.label: [ms for run in runs[point] for ms in run["latencies"]] for point in points},
        # ... and the room's per-stage receipt of each point's last round that ran.
        stages={
            point.label: next((r["stages"] for r in reversed(runs[point]) if r["stages"]), {})
            for point in points
        },
    )
    return summary


def run(quick: bool, target_ms: float, plan: Plan | None = None) -> dict[str, Any]:
    """Sweep (``QUICK``, ``FULL`` or ``plan``); the summary as :func:`sweep` returns it."""
    return asyncio.run(sweep(plan or (QUICK if quick else FULL), target_ms))
