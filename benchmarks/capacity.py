"""Suite "capacity": how many calls one server holds, adding them one by one.

For each composite size (``TELEPRESENCE_VIDEO_SIZE`` 720p, then 360p) a real ``telepresence
serve`` runs on loopback (default settings otherwise), and a few client processes
(:mod:`benchmarks.capacity_clients`, calls dealt round-robin) add calls one at a time. Each
call is an agent (token, sign-in, auto-answer) and a customer (joins the queue) negotiating as
the web client does. The agent sends a 30 fps camera at the composite's size, pre-encoded
ONCE at start-up (H.264, ~2 Mbps at 720p, ~0.7 Mbps at 360p; VP8 if the server answers VP8)
from a stamped, noisy test card, looped as ``av.Packet``s, and a pre-encoded Opus tone; the
customer sends the tone. Every client sender runs the stamped RTP loop (media.aiortc_internals:
one ``struct.pack`` a packet, a frame's datagrams sent in one go). Nothing the clients receive
is decoded, nor parsed by aiortc: each peer's RTP is taken off its socket after SRTP
(benchmarks.capacity_wire), the customer completes the composite's frames on the RTP marker
bit, reads abs-capture-time from the bytes and counts them; the rest is counted.

**Glass-to-glass**, per frame: the moment the customer holds the complete frame minus the
frame's capture time, which the server writes on its first packet (``abs-capture-time``,
mapped from the agent's RTCP sender reports; the agent's reports map each RTP timestamp to
the wall time its loop handed that frame to aiortc). A browser would add its decode and
render (~1-2 ms decode, one display refresh). Frames are stamped by frame index, not time
(a looped buffer carries the time of encoding), so, as a check of that clock, the first
call of each size also decodes its first 150 frames: the stamp's index names the loop frame, the
agent's record of when it last sent that index gives an independent latency;
``stamp_check_ms`` is the median of (stamp latency - abs-capture-time latency) over those
frames, both taken at the same arrival moment: ~0 when the server's capture clock is right.

**A step passes** when every customer gets >= 29 new frames a second (its frames, but never more
than its agent sent: the server repeats the last composite while a camera stalls) and its
glass-to-glass p95 < 150 ms over
the step's window (after a settle time); a failed step is measured once more, and again for
as long as the rest of the machine keeps more than half a core busy (up to 30 s quick, 90 s
full): the ramp stops at a failure in a quiet window, or when the patience runs out (the step
then says ``contended``). One noisy window on a shared machine does not end the ramp.
``calls_720p30`` / ``calls_360p30`` are the most calls of a passing step.

**CPU** (benchmarks.capacity_procs): the server's process tree (its media worker processes
included) from /proc, over each step's window, % of one core. ``server_cpu_pct_per_call`` is
the median over the passing 720p steps of (server CPU - idle CPU) / calls (from the first
step if none passed, said by ``cpu_per_call_from``). ``cores_used`` is the highest step mean
of the server's CPU / 100: how many cores its processes together kept busy over a whole
window; ``cores_used_peak_1s`` is the highest one-second sample / 100, ``server_busy_processes``
the most processes of the tree that used > 5 % of a core in a window. ``composed_<size>`` and
``server_cpu_pct_per_call_composed``: the first call measured once more in layout
``side_by_side`` (the agent alone, but decoded, composed and encoded for the customer: no
passthrough), then back to ``agent`` for the ramp. The clients' own CPU is
given beside it (``client_cpu_pct``); an agent that could not keep 29.5 fps marks the step
``client_limited``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.capacity_media import LOOP_FRAMES, EncodedLoop, encode_opus_loop, encode_video_loop
from benchmarks.capacity_procs import TICKS, ClientProcess, CpuMeter, Server, machine_ticks
from benchmarks.capacity_summary import Ramp, judge, summarize
from telepresence.app import authority_for
from telepresence.auth import Claims
from telepresence.config import Settings

SIZES = {"720p": (1280, 720), "360p": (640, 360)}
# A failure measured while the rest of the machine used more than this (% of one core) is measured
# again, for up to the plan's patience: the suite measures the server, not the neighbours.
QUIET_OTHERS_PCT = 50.0
SECRET = "capacity-benchmark-secret-0123456789"


@dataclass(frozen=True)
class Plan:
    caps: dict[str, int]  # composite size -> the most calls to try
    settle_s: float  # after a call is added, before its step's window
    window_s: float
    idle_s: float
    clients: int = 2
    retry: bool = True  # a failed step is measured again (and again while others load the machine)
    patience_s: float = 30.0  # how long a failure may wait for the machine to quieten
    label: str = ""
    loop_frames: int = LOOP_FRAMES
    composed: bool = True  # measure the first call once more with the composite encoded for it


QUICK = Plan(caps={"720p": 12, "360p": 26}, settle_s=1.5, window_s=3.0, idle_s=2.0, label="quick")
FULL = Plan(
    caps={"720p": 20, "360p": 40}, settle_s=3.0, window_s=10.0, idle_s=5.0, patience_s=90.0, label="full"
)


def _say(text: str) -> None:
    print(f"[capacity] {text}", file=sys.stderr, flush=True)


async def _window(
    server: CpuMeter, clients_cpu: CpuMeter, clients: list[ClientProcess], calls: int, seconds: float
) -> dict[str, Any]:
    server.start()
    clients_cpu.start()
    busy0, total0 = machine_ticks()
    t0 = time.time()
    ticks = max(1, round(seconds))
    for _ in range(ticks):
        await asyncio.sleep(seconds / ticks)
        server.sample()
        clients_cpu.sample()
    t1 = time.time()
    busy1, total1 = machine_ticks()
    machine = 100.0 * (os.cpu_count() or 1) * (busy1 - busy0) / max(1, total1 - total0)
    replies = await asyncio.gather(*(c.ask(cmd="stats", t0=t0, t1=t1) for c in clients))
    stats = [call for reply in replies for call in reply.get("calls", [])]
    passed, why, figures = judge(stats, calls)
    span = t1 - t0
    return {
        "calls": calls,
        "passed": passed,
        "why": why,
        "server_cpu_pct": round(statistics.fmean(server.seconds), 1),
        "server_cpu_peak_1s": round(max(server.seconds), 1),
        "server_busy_processes": sum(1 for t in server.busy.values() if t / TICKS / span > 0.05),
        # Each process of the server's tree, busiest first (% of one core): is one of them full?
        "server_process_cpu": sorted(
            (round(100 * t / TICKS / span, 1) for t in server.busy.values()), reverse=True
        ),
        "client_cpu_pct": round(statistics.fmean(clients_cpu.seconds), 1),
        # Everything else on the machine (other people's work, the kernel's), % of one core; /proc/stat
        # and the processes' own times are read a moment apart, so near zero it reads a few % either way.
        "others_cpu_pct": round(
            machine - statistics.fmean(server.seconds) - statistics.fmean(clients_cpu.seconds), 1
        ),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        **figures,
    }


async def _idle(server: CpuMeter, seconds: float, patience: float = 30.0) -> float:
    """The server's CPU with no call, once its start-up (its worker processes') is over: the
    lowest of ``seconds``-long readings, taken until one is under 3 % or ``patience`` runs out."""
    readings: list[float] = []
    deadline = time.monotonic() + patience
    while not readings or (min(readings) >= 3.0 and time.monotonic() < deadline):
        server.start()
        await asyncio.sleep(seconds)
        readings.append(server.sample())
    return round(min(readings), 1)


async def _composed(
    server: CpuMeter, clients_cpu: CpuMeter, clients: list[ClientProcess], plan: Plan
) -> dict[str, Any]:
    """The one call again with the composite decoded, composed and encoded for its customer
    (layout side_by_side, which with no customer camera shows the agent alone, but is no
    passthrough); then back to the agent layout for the ramp."""
    # The first call decodes meanwhile: composites may come without abs-capture-time (its stamps then).
    frames = round((plan.settle_s + 1.5 + plan.window_s) * 30)
    await asyncio.gather(*(c.ask(cmd="decode", frames=frames) for c in clients))
    await asyncio.gather(*(c.ask(cmd="layout", layout="side_by_side") for c in clients))
    await asyncio.sleep(plan.settle_s + 1)
    step = await _window(server, clients_cpu, clients, 1, plan.window_s)
    await asyncio.gather(*(c.ask(cmd="layout", layout="agent") for c in clients))
    await asyncio.sleep(plan.settle_s + 1)
    return step


async def _ramp(size: str, plan: Plan, workdir: Path, video: Path, opus: Path) -> Ramp:
    authority = authority_for(Settings.load(env={}, secret=SECRET, state_dir=workdir))
    ramp = Ramp(size)
    # Admission off (cpu_budget_pct 100): the ramp finds the quality limit itself, and the server's
    # budget reads the whole machine's CPU, which here includes the clients.
    settings = {"video_size": size, "wrap_up_s": 0, "offer_timeout_s": 30, "cpu_budget_pct": 100}
    async with Server(workdir, SECRET, **settings) as server:
        clients = [ClientProcess(i, video, opus) for i in range(plan.clients)]
        try:
            for client in clients:
                await client.start()
            assert server.process is not None
            server_cpu = CpuMeter([server.process.pid])
            clients_cpu = CpuMeter([c.pid for c in clients])
            ramp.idle_cpu_pct = await _idle(server_cpu, plan.idle_s)
            _say(f"{size}: server idle {ramp.idle_cpu_pct} % of a core")
            for calls in range(1, plan.caps[size] + 1):
                client = clients[(calls - 1) % len(clients)]
                name = f"{size}-{calls}"
                token = authority.mint(
                    Claims(name=f"agent-{name}", role="agent", expires_at=time.time() + 7200)
                )
                reply = await client.ask(
                    timeout=90, cmd="add", url=server.url, token=token, name=name, check=calls == 1
                )
                if not reply["ok"]:
                    ramp.steps.append(
                        {"calls": calls, "passed": False, "why": f"set-up failed: {reply['error']}"}
                    )
                    _say(f"{size}: call {calls} could not be set up: {reply['error']}\n{server.tail(5)}")
                    break
                await asyncio.sleep(plan.settle_s)
                step = await _window(server_cpu, clients_cpu, clients, calls, plan.window_s)
                tries, patience = 1, time.monotonic() + plan.patience_s
                while not step["passed"] and plan.retry:
                    contended = step["others_cpu_pct"] > QUIET_OTHERS_PCT
                    if tries >= 2 and not (contended and time.monotonic() < patience):
                        break
                    _say(
                        f"{size}: {calls} calls failed ({step['why']}"
                        + (f"; others used {step['others_cpu_pct']} % of a core" if contended else "")
                        + "); measuring again"
                    )
                    step = await _window(server_cpu, clients_cpu, clients, calls, plan.window_s)
                    tries += 1
                step["tries"] = tries
                step["contended"] = not step["passed"] and step["others_cpu_pct"] > QUIET_OTHERS_PCT
                if calls == 1 and step["passed"] and plan.composed:
                    ramp.composed = await _composed(server_cpu, clients_cpu, clients, plan)
                    _say(
                        f"{size}: 1 call composed: server {ramp.composed['server_cpu_pct']} %, g2g p50/p95 "
                        f"{ramp.composed['g2g_p50_ms']}/{ramp.composed['g2g_p95_ms']} ms, fps min "
                        f"{ramp.composed['fps_min']}, forwarded {ramp.composed['forwarded_share']:.0%}, "
                        f"latency by {ramp.composed['latency_by']}"
                    )
                step["setup_s"] = reply.get("setup_s")
                step["codec"] = reply.get("codec")
                ramp.steps.append(step)
                _say(
                    f"{size}: {calls} calls {'ok  ' if step['passed'] else 'FAIL'} "
                    f"server {step['server_cpu_pct']} % {step['server_process_cpu'][:4]} "
                    f"others {step['others_cpu_pct']} % "
                    f"(peak {step['server_cpu_peak_1s']}), clients {step['client_cpu_pct']} %, fps min "
                    f"{step['fps_min']}, g2g p50/p95 {step['g2g_p50_ms']}/{step['g2g_p95_ms']} ms "
                    f"(worst p95 {step['g2g_worst_p95_ms']}), agents' fps min {step['agent_fps_min']}, "
                    f"forwarded {step['forwarded_share']:.0%}, "
                    f"load {step['load_avg_1m']}" + (f": {step['why']}" if step["why"] else "")
                )
                if not step["passed"]:
                    _say(f"{size}: the server's log ends:\n{server.tail(8)}")
                    break
            else:
                ramp.capped = True
        finally:
            await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
    return ramp


async def measure(plan: Plan) -> dict[str, Any]:
    """Ramp every size in ``plan.caps``; the summary of :func:`summarize`."""
    load_start = os.getloadavg()[0]
    ramps: dict[str, Ramp] = {}
    with tempfile.TemporaryDirectory(prefix="capacity-") as tmp:
        workdir = Path(tmp)
        opus = workdir / "opus.loop"
        encode_opus_loop().save(opus)
        for size in plan.caps:
            width, height = SIZES[size]
            started = time.monotonic()
            video = workdir / f"h264-{size}.loop"
            loop: EncodedLoop = await encode_video_loop("H264", width, height, plan.loop_frames)
            loop.save(video)
            _say(f"{size}: {len(loop.frames)} frames encoded once in {time.monotonic() - started:.1f} s")
            ramps[size] = await _ramp(size, plan, workdir, video, opus)
    return summarize(ramps, plan.label, (load_start, os.getloadavg()[0]))


def run(quick: bool = False) -> dict[str, Any]:
    return asyncio.run(measure(QUICK if quick else FULL))
