"""Suite "latency": glass-to-glass frame latency, read from stamps, through several paths in one run.

Like for like (benchmarks.latency_paths): every path ends in the same final receiver (frames
completed on the RTP marker bit, aiortc's decoder, a drain), every encoder is the server's
(VP8: SafeVp8Encoder; H.264: x264 ultrafast + zerolatency) with one bitrate range (start
1 Mbps, 0.5-3 Mbps), and every path carries the same content: the agent's camera, full
frame, 720p30 (a moving test card, or ``--camera``: a V4L2 device or a video file).

- ``direct`` / ``direct_h264``: the agent's peer straight to the customer's, no server;
- ``relay``: through a peer that decodes and encodes again (no compositor);
- ``server`` / ``server_h264``: the real server path, browser-like agent peer ->
  ``media.room.Room`` -> browser-like customer peer, layout ``agent`` with the camera's
  passthrough off, so the server decodes, composes and encodes every frame;
- ``server_screen``: the real call's layout (a 5 fps screen full frame, the camera
  picture-in-picture): other content, so only reported, not compared.

Headline: ``hop_p50_ms``, what the server adds over a direct call (server p50 - direct p50),
against ``floor_ms``, the work the hop cannot avoid measured in the same run (decode +
compose + encode of one frame of the same content, p50): ``hop_vs_floor`` (target <= 1.5).

``growth_ms`` / ``growth_p95_ms``: the server path (H.264, the server's default) in the
``screen`` layout while the compositor's PRIMARY input, the agent's camera, stalls again
and again (0.3-1.5 s every
3 s; the fallback clock then carries the output) and another process keeps one core busy:
p50 and p95 of the last window minus the first (5 min, windows of 60 s; --quick 20 s / 5 s).
Targets 5 and 10 ms.

Samples: a path expects every camera frame sent between the first and the last it read
(frame ids run on by one) and measures those it read with a stamp; frames without one
(unreadable, or composites on the fallback clock) are counted as ``unstamped``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import av
import numpy as np
from aiortc.codecs import depayload, get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from benchmarks import latency_paths as paths
from benchmarks.latency_paths import BITRATE, PathResult
from benchmarks.progress import progress
from benchmarks.samples import LOST_LIMIT_PCT, lost_pct
from media.camera import CameraTrack
from media.compositor import CompositorTrack
from media.layout import AGENT
from media.peers import make_video_encoder
from media.sources import ScreenTrack, TestCardTrack

STALLS_S = (0.3, 1.0, 0.5, 1.5)  # the agent camera's stalls, in turn
STALL_EVERY_S = 3.0
# The first seconds of a call carry a start-up transient (keyframes, REMB re-creating the
# encoders): the growth run's first window starts after it, so growth means growth.
GROWTH_SETTLE_S = 4.0
# The codec a deployment runs (the server's `video_codec` default): what drifts is then the
# compositor's fallback clock and the queues, not a VP8 encoder starved by the load (which
# the VP8 paths above show).
GROWTH_CODEC = "H264"
CODEC_PARAMETERS = {"H264": {"packetization-mode": "1", "profile-level-id": "42e01f"}}
TARGETS = {"hop_vs_floor": 1.5, "growth_ms": 5.0, "growth_p95_ms": 10.0}


class StallingCamera(MediaStreamTrack):
    """The agent's camera stalling now and then (a USB hiccup, a busy laptop): ``STALLS_S`` in
    turn, one every ``every_s``. The camera keeps its own clock: after a stall it resumes with
    a fresh picture, not a burst of old ones."""

    kind = "video"

    def __init__(self, inner: MediaStreamTrack, every_s: float = STALL_EVERY_S) -> None:
        super().__init__()
        self.inner = inner
        self.captures = getattr(inner, "captures", None)  # the camera's capture times, if it keeps them
        self.every_s = every_s
        self.stalls = 0
        self._lengths = itertools.cycle(STALLS_S)
        self._next: float | None = None

    async def recv(self) -> av.VideoFrame:
        loop = asyncio.get_running_loop()
        if self._next is None:
            self._next = loop.time() + self.every_s
        if loop.time() >= self._next:
            self.stalls += 1
            await asyncio.sleep(next(self._lengths))
            self._next = loop.time() + self.every_s
        return await self.inner.recv()

    def stop(self) -> None:
        super().stop()
        self.inner.stop()


class CpuLoad:
    """Another process keeping one core busy for as long as the block runs (owned: killed after).

    ``cpu_s``: the CPU time it really burnt (its rusage once reaped), so a report shows the load
    was there, not only that it was asked for."""

    cpu_s: float | None = None

    def __enter__(self) -> CpuLoad:
        self._process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._process.terminate()
        try:
            _, _, usage = os.wait4(self._process.pid, 0)
        except ChildProcessError:  # reaped already
            self._process.wait(timeout=10)
            return
        self._process.returncode = -1  # reaped by wait4 (for its rusage): Popen must not reap it again
        self.cpu_s = round(usage.ru_utime + usage.ru_stime, 2)


def _p(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


def _cameras(camera: str | None) -> tuple[Callable[[], MediaStreamTrack], list[MediaStreamTrack]]:
    """A factory of the agent's camera (a fresh track per path) and the list of those made,
    to stop (a device is released for the next path)."""
    made: list[MediaStreamTrack] = []

    def make() -> MediaStreamTrack:
        track: MediaStreamTrack
        if camera is None:
            captures = paths.StampClock()
            track = TestCardTrack(1280, 720, fps=30, stamp=True, label="agent", clock=captures)
            track.captures = captures  # type: ignore[attr-defined]  # read by the path's StampLog
        else:
            track = CameraTrack(camera, width=1280, height=720, fps=30)
        made.append(track)
        return track

    return make, made


async def check_camera(camera: str) -> str:
    """Open ``camera`` and wait for a picture: its description, or CameraUnavailable saying why."""
    track = CameraTrack(camera)
    try:
        await track.first_frame()
        return track.describe()
    finally:
        track.stop()


async def floor(
    make_camera: Callable[[], MediaStreamTrack],
    frames: int,
    codec: str = "VP8",
    target_bps: dict[str, int | None] | None = None,
) -> dict[str, Any]:
    """Decode + compose + encode of one frame of the paths' content (``codec``, the paths' range).

    The frames are the camera's, encoded once as the agent's browser would (untimed); then each
    is decoded by aiortc's decoder, composed in the ``agent`` layout and encoded by the server's
    encoder, one after another on this thread (the server spreads them over threads and the
    event loop; the sum is the work, not the wait). ``target_bps``: the bitrates the server
    path's agent and server encoders ran at (its ``target_bps``; default the range's start):
    an encode's cost follows its bitrate."""
    camera = make_camera()
    pictures = [await camera.recv() for _ in range(frames)]
    camera.stop()
    params = RTCRtpCodecParameters(
        mimeType=f"video/{codec}", clockRate=90000, payloadType=96, parameters=CODEC_PARAMETERS.get(codec, {})
    )
    rates = {"agent": BITRATE.start, "server": BITRATE.start}
    rates.update({k: BITRATE.clamp(v) for k, v in (target_bps or {}).items() if v})
    source = make_video_encoder(params, replace(BITRATE, start=rates["agent"]))
    encoder = make_video_encoder(params, replace(BITRATE, start=rates["server"]))
    decoder = get_decoder(params)
    compositor = CompositorTrack(size="720p", layout="agent", agent_name="Agent")
    stages: dict[str, list[float]] = {"decode": [], "compose": [], "encode": [], "total": []}
    failed = 0
    for picture in progress(pictures, desc=f"floor {codec}", total=frames):
        payloads, timestamp = source.encode(picture)
        data = b"".join(depayload(params, payload) for payload in payloads)
        started = time.perf_counter()
        decoded = decoder.decode(JitterFrame(data=data, timestamp=timestamp))
        decoded_at = time.perf_counter()
        if not decoded:
            failed += 1
            continue
        compositor.slot(AGENT).put(decoded[0])
        out = compositor.compose()
        composed_at = time.perf_counter()
        encoder.encode(out)
        done = time.perf_counter()
        for stage, ms in zip(
            stages,
            (decoded_at - started, composed_at - decoded_at, done - composed_at, done - started),
            strict=True,
        ):
            stages[stage].append(ms * 1000)
    await compositor.close()
    warm = min(10, len(stages["total"]) // 2)
    summary = {
        stage: {"p50": _p(v[warm:], 50), "p95": _p(v[warm:], 95), "count": len(v) - warm}
        for stage, v in stages.items()
    }
    return {
        "stages": summary,
        "target_bps": rates,
        "expected": frames - warm,
        "measured": len(stages["total"]) - warm,
        "failed": failed,
    }


async def growth(
    make_camera: Callable[[], MediaStreamTrack], total: float, window: float, settle: float, every_s: float
) -> dict[str, Any]:
    """The server path in the ``screen`` layout, the agent's camera stalling, one core kept busy."""
    cameras: list[StallingCamera] = []

    def stalling() -> MediaStreamTrack:
        cameras.append(StallingCamera(make_camera(), every_s))
        return cameras[-1]

    load_before = os.getloadavg()[0]
    with CpuLoad() as busy:
        result = await paths.server(
            "growth",
            stalling,
            GROWTH_CODEC,
            total,
            settle,
            layout="screen",
            screen=ScreenTrack(1280, 720, fps=5),
        )
    rows = result.log.rows
    first = [ms for t, _, ms in rows if t < window]
    last = [ms for t, _, ms in rows if t >= total - window]
    return {
        "result": result,
        "growth_ms": round(_p(last, 50) - _p(first, 50), 1),
        "growth_p95_ms": round(_p(last, 95) - _p(first, 95), 1),
        "first": {"p50": _p(first, 50), "p95": _p(first, 95), "n": len(first)},
        "last": {"p50": _p(last, 50), "p95": _p(last, 95), "n": len(last)},
        "stalls": sum(c.stalls for c in cameras),
        "load": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cpu_load_s": busy.cpu_s,
        "seconds": total,
    }


async def _run(quick: bool, camera: str | None, scale: float) -> dict[str, Any]:
    seconds, warmup = (6.0, 1.5) if quick else (20.0, 3.0)
    total, window = (20.0, 5.0) if quick else (300.0, 60.0)
    seconds, total, window = seconds * scale, total * scale, window * scale
    warmup, settle = max(0.3, warmup * scale), max(0.5, GROWTH_SETTLE_S * scale)
    floor_frames = max(12, round((60 if quick else 150) * scale))
    source = await check_camera(camera) if camera is not None else "test card 1280x720@30 (stamped)"
    make, made = _cameras(camera)
    results: dict[str, PathResult] = {}
    # The order is part of the measurement. The relay (no headline) goes first and takes the
    # process's cold start; each hop's pair runs back to back (the machine's load moves), and
    # the two pairs in opposite orders (direct -> server, then server -> direct), so a load
    # that rises or falls through the run pushes the two hops' figures apart, not both one way.
    plan = [
        ("relay", lambda: paths.relay("relay", make, seconds, warmup)),
        ("direct", lambda: paths.direct("direct", make, "VP8", seconds, warmup)),
        ("server", lambda: paths.server("server", make, "VP8", seconds, warmup)),
        ("server_h264", lambda: paths.server("server_h264", make, "H264", seconds, warmup)),
        ("direct_h264", lambda: paths.direct("direct_h264", make, "H264", seconds, warmup)),
        (
            "server_screen",
            lambda: paths.server(
                "server_screen",
                make,
                "VP8",
                seconds,
                warmup,
                layout="screen",
                screen=ScreenTrack(1280, 720, fps=5),
            ),
        ),
    ]
    for name, measure in plan:  # one after another: they would compete for the two cores
        try:
            results[name] = await measure()
        finally:
            for track in made:
                track.stop()
            made.clear()
    work = await floor(make, floor_frames, "VP8", results["server"].config.get("target_bps"))
    work_h264 = await floor(make, floor_frames, "H264", results["server_h264"].config.get("target_bps"))
    grew = await growth(make, total, window, settle, max(0.5, STALL_EVERY_S * scale))
    for track in made:
        track.stop()
    results["growth"] = grew["result"]
    return _summary(results, work, work_h264, grew, source)


def _summary(
    results: dict[str, PathResult],
    work: dict[str, Any],
    work_h264: dict[str, Any],
    grew: dict[str, Any],
    source: str,
) -> dict:
    lat = {name: r.log.latencies for name, r in results.items()}
    counts = {name: r.log.counts() for name, r in results.items()}
    counts["floor"] = {"expected": work["expected"], "measured": work["measured"], "unstamped": 0}
    counts["floor_h264"] = {
        "expected": work_h264["expected"],
        "measured": work_h264["measured"],
        "unstamped": 0,
    }
    summary: dict[str, Any] = {
        "direct_p50_ms": _p(lat["direct"], 50),
        "direct_h264_p50_ms": _p(lat["direct_h264"], 50),
        "relay_p50_ms": _p(lat["relay"], 50),
        "server_p50_ms": _p(lat["server"], 50),
        "server_p95_ms": _p(lat["server"], 95),
        "server_h264_p50_ms": _p(lat["server_h264"], 50),
        "server_h264_p95_ms": _p(lat["server_h264"], 95),
        "server_screen_p50_ms": _p(lat["server_screen"], 50),
        "server_screen_p95_ms": _p(lat["server_screen"], 95),
        "floor_ms": work["stages"]["total"]["p50"],
        "floor_stages": work["stages"],
        "floor_h264_ms": work_h264["stages"]["total"]["p50"],
        "floor_h264_stages": work_h264["stages"],
        "floor_target_bps": {"vp8": work["target_bps"], "h264": work_h264["target_bps"]},
        "growth_ms": grew["growth_ms"],
        "growth_p95_ms": grew["growth_p95_ms"],
        "growth": {
            **{k: grew[k] for k in ("first", "last", "stalls", "load", "cpu_load_s", "seconds")},
            "codec": GROWTH_CODEC,
        },
        "encode_p95_ms": {
            "vp8": results["server"].receipt.get("encode", {}).get("p95"),
            "h264": results["server_h264"].receipt.get("encode", {}).get("p95"),
        },
        "compose_p95_ms": results["server"].receipt.get("compose", {}).get("p95"),
        "slot_dropped": results["growth"].slot_dropped,
        "frames": {name: len(values) for name, values in lat.items()},
        "close_spaced_pct": {name: r.log.close_spaced_pct() for name, r in results.items()},
        "camera": source,
        "paths": {name: r.config for name, r in results.items()},
        "path_order": list(results),
        "samples_by_path": counts,
        "samples_expected": sum(c["expected"] for c in counts.values()),
        "samples_measured": sum(c["measured"] for c in counts.values()),
        "stages": {"server vp8": results["server"].receipt, "server h264": results["server_h264"].receipt},
        "samples": {name: values for name, values in lat.items() if name != "growth"},
    }
    summary["stages"]["floor vp8"] = work["stages"]
    summary["stages"]["floor h264"] = work_h264["stages"]
    summary["hop_p50_ms"] = round(summary["server_p50_ms"] - summary["direct_p50_ms"], 1)
    summary["hop_h264_p50_ms"] = round(summary["server_h264_p50_ms"] - summary["direct_h264_p50_ms"], 1)
    summary["hop_vs_floor"] = (
        round(summary["hop_p50_ms"] / summary["floor_ms"], 2) if summary["floor_ms"] else None
    )
    floor_h264 = summary["floor_h264_ms"]
    summary["hop_h264_vs_floor"] = round(summary["hop_h264_p50_ms"] / floor_h264, 2) if floor_h264 else None
    summary["ratio"] = round(summary["server_p50_ms"] / summary["relay_p50_ms"], 3)
    summary["vs_direct"] = round(summary["server_p50_ms"] / summary["direct_p50_ms"], 3)
    lost = lost_pct(summary)
    summary["samples_lost_pct"] = lost
    summary["targets"] = {
        "hop_vs_floor": summary["hop_vs_floor"] is not None
        and summary["hop_vs_floor"] <= TARGETS["hop_vs_floor"],
        "growth_ms": summary["growth_ms"] <= TARGETS["growth_ms"],
        "growth_p95_ms": summary["growth_p95_ms"] <= TARGETS["growth_p95_ms"],
        "samples": lost is not None and lost <= LOST_LIMIT_PCT,
    }
    return summary


def run(quick: bool, *, camera: str | None = None, scale: float = 1.0) -> dict:
    """Measure every path, the floor and the growth run; returns the summary for the runner.

    ``camera``: a V4L2 device or a video file as the agent's camera (media.camera; raises
    CameraUnavailable, saying why, when it does not open or gives no picture). ``scale``
    multiplies every measuring window, warm-up and the floor's frame count (a test's tiny run).
    """
    return asyncio.run(_run(quick, camera, scale))
