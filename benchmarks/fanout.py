"""Suite "fanout": the avatar host to many viewers. What the server's CPU does from 1 to 10 to 50
WHEP viewers (the program is encoded once, so the target is 50 viewers for at most twice one
viewer's CPU), and the host's glass-to-glass through Janus against direct WHEP.

One run, every part real: Debian's Janus on a generated config (benchmarks.fanout_janus), the
server in a process of its own with the host live and pushing to Janus (``host_janus_rtp``;
benchmarks.fanout_server), and viewers in processes of their own (benchmarks.fanout_viewers).
Process 0 holds the two stamp viewers, one WHEP and one Janus, with the same receiving code
(aiortc, frames completed on the marker bit, decoded, the avatar's render-time stamp read);
the other WHEP viewers only count frames, 10 a process, at niceness 10. At each level the
suite waits :data:`SETTLE_S`, then reads the server's process tree CPU from /proc over a window
(% of one core) and every viewer's frames and glass-to-glass in that window.

The Janus push runs at every level (one more reader of the one encode, constant); the host has
no studio, so no voice flows: this is the picture's fan-out.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.capacity_procs import ClientProcess, CpuMeter, _stop, free_port, machine_ticks
from benchmarks.fanout_janus import JanusProcess, free_udp_port, janus_installed
from benchmarks.progress import progress

LEVELS = (1, 10, 50)
PER_PROCESS = 10  # counting viewers in one viewer process
SETTLE_S = {True: 3.0, False: 5.0}  # after viewers join, before measuring (keyframes, queues)
WINDOW_S = {True: 5.0, False: 15.0}
READY_S = 60.0
# The counting viewers yield the CPU (to the server, the stamp viewers, the machine's other work):
# on a 2-core machine their 50 peers would otherwise starve the server whose cost is measured.
COUNTERS_NICE = 10
CPU_RATIO_TARGET = 2.0
FPS = 30  # the avatar's frame rate


class ViewerProcess(ClientProcess):
    """One ``benchmarks.fanout_viewers`` process (the capacity suite's JSON-lines client)."""

    def __init__(self, index: int, nice: int = 0) -> None:
        super().__init__(index, Path(), Path())
        self.args = ["nice", "-n", str(nice), sys.executable, "-m", "benchmarks.fanout_viewers"]
        self.viewers = 0

    async def command(self, timeout: float = 120, **command: Any) -> dict[str, Any]:
        reply = await self.ask(timeout, **command)
        if not reply.get("ok"):
            raise RuntimeError(f"viewer process {self.index}: {reply.get('error')}")
        return reply


class ServerProcess:
    """``benchmarks.fanout_server``: the app with the host live; stops when its stdin closes."""

    def __init__(self, workdir: Path, janus_rtp: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "benchmarks.fanout_server", str(self.port), janus_rtp]
        self.args.append(str(workdir))
        self.log = workdir / "server.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), READY_S)
        if not line:
            raise RuntimeError(f"the server exited: {self.log.read_text(errors='replace')[-2000:]}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def stop(self) -> None:
        if self.process is None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()  # its signal to shut down cleanly
        await _stop(self.process, signal.SIGTERM, 10, exiting=15)


def _ms(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "median": None, "p95": None}
    ordered = sorted(values)
    return {
        "n": len(values),
        "median": round(statistics.median(ordered), 1),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
    }


def level_figures(level: int, cpu_pct: float, window_s: float, stats: list[dict[str, Any]]) -> dict[str, Any]:
    """One level's figures from the viewer processes' stats (pure)."""
    viewers = [v for reply in stats for v in reply["viewers"]]
    whep = [v for v in viewers if v["path"] == "whep"]
    fps = [v["frames"] / window_s for v in whep]
    raw = {
        path: [ms for v in viewers if v["path"] == path and v["stamps"] for ms in v["latencies"]]
        for path in ("whep", "janus")
    }
    by_path = {path: _ms(ms) for path, ms in raw.items()}
    stamped = [v for v in viewers if v["stamps"]]
    # The program's pace: the Janus viewer's (its one reader, the push, is never the one behind).
    program_fps = [v["frames"] / window_s for v in viewers if v["path"] == "janus"]
    per_frame = cpu_pct * FPS / program_fps[0] if program_fps and program_fps[0] > 0 else None
    return {
        "viewers": level,
        "whep_viewers_seen": len(whep),
        "server_cpu_pct": round(cpu_pct, 1),
        "program_fps": round(program_fps[0], 1) if program_fps else None,
        # What the same work would cost at the host's 30 fps: a server the machine starves of CPU
        # (viewers' processes share its cores) makes fewer frames and spends less.
        "server_cpu_pct_at_30fps": round(per_frame, 1) if per_frame is not None else None,
        "viewer_fps_median": round(statistics.median(fps), 1) if fps else None,
        "viewer_fps_min": round(min(fps), 1) if fps else None,
        "glass_to_glass_ms": by_path,
        "raw_ms": {
            path: [ms for v in viewers if v["path"] == path for ms in v["latencies"]] for path in by_path
        },
        "stamp_frames": sum(v["frames"] for v in stamped),
        "stamps_read": sum(len(v["latencies"]) for v in stamped),
    }


def summarize(levels: list[dict[str, Any]], quick: bool, load: tuple[float, float]) -> dict[str, Any]:
    """The suite's summary (pure): CPU by level, the 50-vs-1 ratio, Janus against WHEP."""
    by_level = {str(x["viewers"]): x for x in levels}
    first, last = levels[0], levels[-1]
    cpu_ratio = (
        round(last["server_cpu_pct"] / first["server_cpu_pct"], 2) if first["server_cpu_pct"] > 0 else None
    )
    at_30 = first["server_cpu_pct_at_30fps"], last["server_cpu_pct_at_30fps"]
    g2g = first["glass_to_glass_ms"]
    whep_ms, janus_ms = g2g["whep"]["median"], g2g["janus"]["median"]
    expected = sum(x["stamp_frames"] for x in levels) + len(levels)
    measured = sum(x["stamps_read"] for x in levels) + sum(1 for x in levels if x["server_cpu_pct"] > 0)
    return {
        "suite": "fanout",
        "quick": quick,
        "levels": [x["viewers"] for x in levels],
        "server_cpu_pct": {k: x["server_cpu_pct"] for k, x in by_level.items()},
        "viewer_fps_median": {k: x["viewer_fps_median"] for k, x in by_level.items()},
        "viewer_fps_min": {k: x["viewer_fps_min"] for k, x in by_level.items()},
        f"cpu_ratio_{last['viewers']}_vs_{first['viewers']}": cpu_ratio,
        "program_fps": {k: x["program_fps"] for k, x in by_level.items()},
        "viewers_cpu_pct": {k: x.get("viewers_cpu_pct") for k, x in by_level.items()},
        "machine_busy_pct": {k: x.get("machine_busy_pct") for k, x in by_level.items()},
        "server_cpu_pct_at_30fps": {k: x["server_cpu_pct_at_30fps"] for k, x in by_level.items()},
        f"cpu_ratio_at_30fps_{last['viewers']}_vs_{first['viewers']}": (
            round(at_30[1] / at_30[0], 2) if None not in at_30 and at_30[0] > 0 else None
        ),
        "cpu_ratio_target": CPU_RATIO_TARGET,
        # At the first level (one WHEP viewer): the same host, the same receiving code.
        "glass_to_glass_ms": g2g,
        "glass_to_glass_ms_by_level": {k: x["glass_to_glass_ms"] for k, x in by_level.items()},
        "janus_minus_whep_ms": round(janus_ms - whep_ms, 1) if None not in (whep_ms, janus_ms) else None,
        "janus_vs_whep": round(janus_ms / whep_ms, 2) if whep_ms and janus_ms is not None else None,
        "load_avg_1m": [round(load[0], 2), round(load[1], 2)],
        "samples": {f"{path} (1 viewer)": ms for path, ms in first["raw_ms"].items()},  # for the bench's CDF
        "samples_expected": expected,
        "samples_measured": measured,
        "samples_by_part": {
            "glass_to_glass": {
                "expected": sum(x["stamp_frames"] for x in levels),
                "measured": sum(x["stamps_read"] for x in levels),
            },
            "cpu": {"expected": len(levels), "measured": sum(1 for x in levels if x["server_cpu_pct"] > 0)},
        },
    }


async def _add_counting(processes: list[ViewerProcess], url: str, count: int) -> None:
    """``count`` more counting WHEP viewers, :data:`PER_PROCESS` a process (process 0 is stamps')."""
    while count > 0:
        if len(processes) == 1 or processes[-1].viewers >= PER_PROCESS:
            process = ViewerProcess(len(processes), nice=COUNTERS_NICE)
            await process.start()
            processes.append(process)
        process = processes[-1]
        batch = min(count, PER_PROCESS - process.viewers)
        await process.command(cmd="whep", url=url, count=batch, stamps=False)
        process.viewers += batch
        count -= batch


async def measure(
    quick: bool,
    levels: tuple[int, ...],
    workdir: Path,
    settle_s: float | None = None,
    window_s: float | None = None,
) -> dict[str, Any]:
    """The suite in ``workdir``; ``settle_s``/``window_s`` override the quick or full timings."""
    settle_s = SETTLE_S[quick] if settle_s is None else settle_s
    window_s = WINDOW_S[quick] if window_s is None else window_s
    load_start = os.getloadavg()[0]
    video_port, audio_port = free_udp_port(), free_udp_port()
    janus = JanusProcess(workdir / "janus", free_port(), video_port, audio_port)
    results = []
    async with janus:
        server = ServerProcess(workdir, f"127.0.0.1:{video_port}:{audio_port}")
        processes: list[ViewerProcess] = []
        try:
            await server.start()
            stamps = ViewerProcess(0)
            processes.append(stamps)
            await stamps.start()
            await stamps.command(cmd="janus", url=janus.url)
            await stamps.command(cmd="whep", url=server.url, count=1, stamps=True)
            watching = 1
            for level in progress(levels, "fanout levels"):
                await _add_counting(processes, server.url, level - watching)
                watching = level
                await asyncio.sleep(settle_s)
                meter, viewers_meter = CpuMeter([server.pid]), CpuMeter([p.pid for p in processes])
                meter.start()
                viewers_meter.start()
                busy0, total0 = machine_ticks()
                t0 = time.time()
                await asyncio.sleep(window_s)
                cpu = meter.sample()
                busy1, total1 = machine_ticks()
                t1 = time.time()
                stats = await asyncio.gather(*(p.command(cmd="stats", t0=t0, t1=t1) for p in processes))
                figures = level_figures(level, cpu, t1 - t0, list(stats))
                # Whether the server had the CPU it wanted: the machine's and our viewers' share.
                figures["viewers_cpu_pct"] = round(viewers_meter.sample(), 1)
                figures["machine_busy_pct"] = round(100 * (busy1 - busy0) / max(1, total1 - total0), 1)
                results.append(figures)
        finally:
            await asyncio.gather(*(p.stop() for p in processes), return_exceptions=True)
            await server.stop()
    return summarize(results, quick, (load_start, os.getloadavg()[0]))


def run(quick: bool = False, levels: tuple[int, ...] = LEVELS) -> dict[str, Any]:
    if not janus_installed():
        raise RuntimeError("the fanout suite needs Debian's janus (apt-get install janus)")
    if not levels or levels[0] < 1 or list(levels) != sorted(set(levels)):
        raise ValueError(f"levels {levels!r}: increasing viewer counts from 1")
    with tempfile.TemporaryDirectory(prefix="fanout-") as workdir:
        return asyncio.run(measure(quick, levels, Path(workdir)))
