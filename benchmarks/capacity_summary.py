"""The capacity suite's verdicts and figures: whether a step passes, and the suite's JSON.

Pure functions of the clients' per-call stats (benchmarks.capacity_clients) and the CPU
readings (benchmarks.capacity_procs); the method is in benchmarks.capacity's docstring.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIN_FPS = 29.0
MAX_P95_MS = 150.0
TARGETS = {"server_cpu_pct_per_call": 12.0, "calls_720p30": 10, "calls_360p30": 24}


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


@dataclass
class Ramp:
    size: str
    idle_cpu_pct: float = 0.0
    steps: list[dict[str, Any]] = field(default_factory=list)
    capped: bool = False
    composed: dict[str, Any] | None = None

    @property
    def passing(self) -> list[dict[str, Any]]:
        return [s for s in self.steps if s["passed"]]

    @property
    def calls(self) -> int:
        return max((s["calls"] for s in self.passing), default=0)


def judge(calls: list[dict[str, Any]], expected: int) -> tuple[bool, str, dict[str, Any]]:
    """Whether every customer got >= 29 fps and p95 < 150 ms, why not, and the step's figures."""
    for c in calls:
        # New pictures a second: a customer cannot see more of the agent than the agent sent (the
        # server repeats the last composite while a camera stalls, and those repeats count as frames).
        c["fps_new"] = min(c["fps"], c["agent_fps"])
    pooled = [ms for c in calls for ms in c["latencies"]]
    p95s = [_pct(c["latencies"], 95) for c in calls]
    figures: dict[str, Any] = {
        "fps_min": min((c["fps_new"] for c in calls), default=0.0),
        "fps_median": round(statistics.median([c["fps_new"] for c in calls]), 2) if calls else 0.0,
        "customer_fps_min": min((c["fps"] for c in calls), default=0.0),
        "g2g_p50_ms": _pct(pooled, 50),
        "g2g_p95_ms": _pct(pooled, 95),
        "g2g_worst_p95_ms": max((p for p in p95s if p is not None), default=None),
        "frames": sum(c["frames"] for c in calls),
        # Frames that are the agent's own as it sent them (the server's passthrough), not composites.
        "forwarded_share": round(
            sum(c["forwarded"] for c in calls) / max(1, sum(c["frames"] for c in calls)), 2
        ),
        "g2g_samples": len(pooled),
        "agent_fps_min": min((c["agent_fps"] for c in calls), default=0.0),
        "voice_to_customer_pps_min": min((c["voice_to_customer_pps"] for c in calls), default=0.0),
        "voice_to_agent_pps_min": min((c["voice_to_agent_pps"] for c in calls), default=0.0),
        "preview_pps_median": statistics.median([c["preview_pps"] for c in calls]) if calls else 0.0,
    }
    figures["latency_by"] = sorted({c["latency_by"] for c in calls if c.get("latency_by")})
    stamped = [s - a for c in calls for s, a in c["stamped"]]
    if stamped:
        figures["stamp_check_ms"] = round(statistics.median(stamped), 1)
        figures["stamp_check_n"] = len(stamped)
    figures["client_limited"] = figures["agent_fps_min"] < MIN_FPS + 0.5
    why = ""
    if len(calls) < expected:
        why = f"{expected - len(calls)} call(s) missing from the clients' stats"
    elif ended := [
        c["name"] for c in calls if c["ended"] or c["state"] != "connected" or c["agent_state"] != "connected"
    ]:
        why = f"call(s) ended or disconnected: {ended[:3]}"
    elif slow := [c for c in calls if c["fps_new"] < MIN_FPS]:
        why = f"{len(slow)} customer(s) under {MIN_FPS:g} fps (lowest {min(c['fps_new'] for c in slow)})"
    elif blind := [c["name"] for c, p in zip(calls, p95s, strict=True) if p is None]:
        why = f"no glass-to-glass samples for {blind[:3]}"
    elif late := [p for p in p95s if p is not None and p >= MAX_P95_MS]:
        why = f"{len(late)} customer(s) with glass-to-glass p95 >= {MAX_P95_MS:g} ms (worst {max(late)})"
    if why:  # which calls, for the reader of a failure
        figures["calls_detail"] = [
            {"name": c["name"], "fps": c["fps"], "agent_fps": c["agent_fps"], "p95": p, "slips": c["slips"]}
            for c, p in zip(calls, p95s, strict=True)
        ]
    return not why, why, figures


def summarize(ramps: dict[str, Ramp], plan: str, load: tuple[float, float]) -> dict[str, Any]:
    """The suite's JSON: the issue's keys first, then what they rest on."""
    r720, r360 = ramps.get("720p"), ramps.get("360p")
    per_call, source = None, None
    if r720 is not None and r720.steps:
        measured = [s for s in r720.steps if "server_cpu_pct" in s]
        chosen = [s for s in measured if s["passed"]] or measured[:1]
        source = "passing steps" if r720.passing else "first step (none passed)"
        if chosen:
            per_call = round(
                statistics.median([(s["server_cpu_pct"] - r720.idle_cpu_pct) / s["calls"] for s in chosen]), 1
            )
    steps = [s for r in ramps.values() for s in r.steps if "server_cpu_pct" in s]
    summary: dict[str, Any] = {
        "server_cpu_pct_per_call": per_call,
        "calls_720p30": r720.calls if r720 else None,
        "calls_360p30": r360.calls if r360 else None,
        "cores_used": round(max((s["server_cpu_pct"] for s in steps), default=0.0) / 100, 2),
        "cores_used_peak_1s": round(max((s["server_cpu_peak_1s"] for s in steps), default=0.0) / 100, 2),
        "server_busy_processes": max((s["server_busy_processes"] for s in steps), default=0),
        "cpu_per_call_from": source,
        # What other work on the machine used during the windows (median over steps, % of one core).
        "others_cpu_pct_median": round(statistics.median([s["others_cpu_pct"] for s in steps]), 1)
        if steps
        else None,
        "plan": plan,
        "load_avg_1m": {"start": round(load[0], 2), "end": round(load[1], 2)},
        "cores": os.cpu_count(),
    }
    for size, ramp in ramps.items():
        best = next((s for s in reversed(ramp.passing)), None)
        last = ramp.steps[-1] if ramp.steps else {}
        key = size.rstrip("p")
        summary[f"capped_{size}"] = ramp.capped
        summary[f"idle_cpu_pct_{size}"] = ramp.idle_cpu_pct
        summary[f"stopped_{size}"] = last.get("why") or None
        for name in (
            "fps_min",
            "g2g_p50_ms",
            "g2g_p95_ms",
            "g2g_worst_p95_ms",
            "server_cpu_pct",
            "client_cpu_pct",
        ):
            summary[f"{name}_at_{key}"] = best.get(name) if best else None
        summary[f"frames_{size}"] = sum(s.get("frames", 0) for s in ramp.steps)
        summary[f"g2g_samples_{size}"] = sum(s.get("g2g_samples", 0) for s in ramp.steps)
        checks = [s["stamp_check_ms"] for s in ramp.steps if "stamp_check_ms" in s]
        summary[f"stamp_check_ms_{size}"] = round(statistics.median(checks), 1) if checks else None
        summary[f"client_limited_{size}"] = any(s.get("client_limited") for s in ramp.steps)
        summary[f"stopped_contended_{size}"] = bool(last.get("contended"))
        composed = ramp.composed or {}
        summary[f"composed_{size}"] = {
            "server_cpu_pct": round(composed["server_cpu_pct"] - ramp.idle_cpu_pct, 1) if composed else None,
            **{
                k: composed.get(k)
                for k in ("fps_min", "g2g_p50_ms", "g2g_p95_ms", "forwarded_share", "latency_by", "passed")
            },
        }
        summary[f"steps_{size}"] = [
            {
                k: s.get(k)
                for k in (
                    "calls",
                    "passed",
                    "server_cpu_pct",
                    "server_process_cpu",
                    "client_cpu_pct",
                    "others_cpu_pct",
                    "fps_min",
                    "g2g_p95_ms",
                    "agent_fps_min",
                    "forwarded_share",
                    "why",
                    "calls_detail",
                )
            }
            for s in ramp.steps
        ]
    summary["server_cpu_pct_per_call_composed"] = summary.get("composed_720p", {}).get("server_cpu_pct")
    # Every frame a customer completed in a window should give a glass-to-glass reading; one
    # without (no abs-capture-time, no readable stamp) is a failed sample, counted here.
    summary["samples_expected"] = sum(summary[f"frames_{size}"] for size in ramps)
    summary["samples_measured"] = sum(summary[f"g2g_samples_{size}"] for size in ramps)
    summary["targets"] = {
        "server_cpu_pct_per_call": per_call is not None and per_call <= TARGETS["server_cpu_pct_per_call"],
        "calls_720p30": (summary["calls_720p30"] or 0) >= TARGETS["calls_720p30"],
        "calls_360p30": (summary["calls_360p30"] or 0) >= TARGETS["calls_360p30"],
    }
    return summary
