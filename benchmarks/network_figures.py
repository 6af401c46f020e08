"""The network suite's figures from what a customer recorded: pure functions, no I/O, no clock.

Inputs are the customer peer's records (benchmarks.network_peer): ``frames``, a list of
``(t, g2g_ms | None[, arrived | None])`` for every decoded composite frame (wall-clock seconds;
None when the stamp did not read; ``arrived``: when the last packet it needed came), and
``bytes``, ``(t, cumulative received video bytes)`` samples.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Sequence
from typing import Any

FREEZE_S = 0.5  # a gap between presented frames longer than this is a freeze (the issue's)
RECOVERY_WINDOW_S = 1.0  # recovery is judged on 1 s windows ...
RECOVERY_STEP_S = 0.1  # ... starting every 100 ms
RECOVERY_HOLD_S = 2.0  # ... held for this long ...
RECOVERY_FPS_SHARE = 0.9  # a window is "back" when it shows >= 90 % of clean's frame rate ...
# ... and its median glass-to-glass is no more than clean's p95 (a median, not every frame:
# clean itself has 5 % of its frames above its p95).
DEFAULT_CLEAN = {"fps": 28.0, "g2g_p95_ms": 150.0}  # when the run has no clean profile

Frames = Sequence[Sequence[Any]]  # (t, g2g_ms | None) or (t, g2g_ms | None, arrived | None)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), linear between ranks; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def pictures(frames: Frames) -> list[Sequence[Any]]:
    """The presented frames that show a new picture: a frame with the same stamp id as the one
    before it is the server repeating its last composite (the agent's camera stalled); frames
    without an id (older records, unstamped) all count."""
    out = []
    previous = None
    for frame in frames:
        ident = frame[3] if len(frame) > 3 else None
        if ident is None or ident != previous:
            out.append(frame)
        previous = ident
    return out


def between(frames: Frames, start: float, end: float) -> list[Sequence[Any]]:
    """The frames presented in ``[start, end)`` (``frames`` in time order)."""
    times = [f[0] for f in frames]
    return list(frames[bisect.bisect_left(times, start) : bisect.bisect_left(times, end)])


def gaps(frames: Frames, start: float, end: float) -> list[float]:
    """Seconds between consecutive presented frames over ``[start, end)``, counting from the last
    frame before ``start`` (a freeze already running at the start counts) and up to ``end``
    (a freeze still running at the end counts)."""
    times = [f[0] for f in frames]
    before = bisect.bisect_left(times, start)
    inside = times[before : bisect.bisect_left(times, end)]
    lead = [times[before - 1]] if before > 0 else [] if inside else [start]
    points = lead + inside + [end]
    return [b - a for a, b in zip(points, points[1:], strict=False)]


def bitrate_kbps(samples: Sequence[tuple[float, int]], start: float, end: float) -> float | None:
    """Mean received video bitrate over the samples inside ``[start, end]``."""
    inside = [(t, b) for t, b in samples if start <= t <= end]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    (t0, b0), (t1, b1) = inside[0], inside[-1]
    return round((b1 - b0) * 8 / (t1 - t0) / 1000, 1)


def window_figures(
    frames: Frames, samples: Sequence[tuple[float, int]], start: float, end: float
) -> dict[str, Any]:
    """g2g p50/p95 (every presented frame: a repeat shows its age), fps and freezes (new
    pictures: a repeated composite is a frozen picture), longest stall and bitrate over
    ``[start, end)``; ``presented_fps`` counts repeats too."""
    inside = between(frames, start, end)
    new = pictures(frames)
    g2g = [float(f[1]) for f in inside if f[1] is not None]
    # What the receiver added: decoded minus the arrival of the frame's last packet.
    hold = [(f[0] - f[2]) * 1000 for f in inside if len(f) > 2 and f[2] is not None]
    stalls = gaps(new, start, end)
    p50, p95 = percentile(g2g, 50), percentile(g2g, 95)
    hold50, hold95 = percentile(hold, 50), percentile(hold, 95)
    return {
        "receiver_hold_p50_ms": None if hold50 is None else round(hold50, 1),
        "receiver_hold_p95_ms": None if hold95 is None else round(hold95, 1),
        "g2g_p50_ms": None if p50 is None else round(p50, 1),
        "g2g_p95_ms": None if p95 is None else round(p95, 1),
        "fps": round(len(between(new, start, end)) / (end - start), 2),
        "presented_fps": round(len(inside) / (end - start), 2),
        "freezes_over_500ms": sum(1 for gap in stalls if gap > FREEZE_S),
        "longest_stall_ms": round(max(stalls, default=0.0) * 1000),
        "bitrate_kbps": bitrate_kbps(samples, start, end),
        "frames": len(inside),
        "g2g_samples": len(g2g),
    }


def recovery_s(frames: Frames, switch: float, end: float, clean: dict[str, Any] | None) -> float | None:
    """Seconds from ``switch`` (the impairment ending) until the video is back within clean's
    figures: the middle of the first 1 s window that starts :data:`RECOVERY_HOLD_S` of good
    windows (stepping 100 ms), a good window having >= 90 % of clean's fps and a median g2g <=
    clean's p95 (a median flips half a window after a step: the middle is where the step was;
    0.5 means at once). A later relapse (this machine's load shows as such too) does not undo a
    recovery: the window after the switch has its own figures. None: not back before ``end``."""
    reference = clean if clean and clean.get("fps") and clean.get("g2g_p95_ms") else DEFAULT_CLEAN
    fps_floor = RECOVERY_FPS_SHARE * reference["fps"]
    g2g_ceiling = reference["g2g_p95_ms"]
    needed = round(RECOVERY_HOLD_S / RECOVERY_STEP_S) + 1
    new = pictures(frames)
    streak = 0
    s = switch
    while s + RECOVERY_WINDOW_S <= end + 1e-9:
        window = between(frames, s, s + RECOVERY_WINDOW_S)
        g2g = [float(f[1]) for f in window if f[1] is not None]
        good = (
            len(between(new, s, s + RECOVERY_WINDOW_S)) / RECOVERY_WINDOW_S >= fps_floor
            and bool(g2g)
            and statistics.median(g2g) <= g2g_ceiling
        )
        streak = streak + 1 if good else 0
        if streak == needed:
            first = s - (needed - 1) * RECOVERY_STEP_S
            return round(first + RECOVERY_WINDOW_S / 2 - switch, 2)
        s += RECOVERY_STEP_S
    return None


def loss_counts(loss: dict[str, Any], start: float, end: float) -> dict[str, Any]:
    """The customer receiver's loss handling over ``[start, end)``: sequence numbers seen missing,
    NACKs and PLIs it sent, retransmissions that came; per missing packet, the time from its first
    NACK to its first retransmission (p50/p95/max), how many were named by more than one NACK
    (its NACK or retransmission lost, or late), and how many never came back."""
    gaps = [q for t, q in loss["gaps"] if start <= t < end]
    first_nack: dict[int, float] = {}
    named: dict[int, int] = {}
    for t, seqs, *_ in loss["nacks"]:
        for q in seqs:
            first_nack.setdefault(q, t)
            named[q] = named.get(q, 0) + 1
    first_rtx: dict[int, float] = {}
    for t, q in loss["rtx"]:
        first_rtx.setdefault(q, t)
    waits = [(first_rtx[q] - first_nack[q]) * 1000 for q in gaps if q in first_nack and q in first_rtx]
    p50, p95 = percentile(waits, 50), percentile(waits, 95)
    return {
        "missing": len(gaps),
        "nacks_sent": sum(1 for t, *_ in loss["nacks"] if start <= t < end),
        "plis_sent": sum(1 for t in loss["plis"] if start <= t < end),
        "retransmissions": sum(1 for t, _ in loss["rtx"] if start <= t < end),
        "nack_to_rtx_ms": [None if v is None else round(v) for v in (p50, p95, max(waits, default=None))],
        "nacked_again": sum(1 for q in gaps if named.get(q, 0) > 1),
        "never_retransmitted": sum(1 for q in gaps if q not in first_rtx),
    }


def explain_stalls(
    frames: Frames, loss: dict[str, Any], start: float, end: float, over_s: float = 0.4
) -> list[dict[str, Any]]:
    """For each gap between new pictures longer than ``over_s`` in ``[start, end)``: when it
    began (s into the window), how long it lasted, and the packet that held it: the earliest one
    seen missing before the gap ended whose retransmission had not come by then (None: no packet
    was missing, the stall came from elsewhere: CPU). For that packet: when each NACK naming it
    was sent (ms after the gap began) and how many sequence numbers past it the receiver already
    was (the sender keeps the last 128: aiortc's RTP_HISTORY_SIZE), when its retransmission came
    (None: never), and the PLIs sent meanwhile (a PLI at the gap's end: the jitter buffer gave up)."""
    times = [f[0] for f in pictures(frames)]
    if times and times[-1] < end:
        times.append(end)  # a stall still running at the end of the window
    first_rtx: dict[int, float] = {}
    for t, q in loss["rtx"]:
        first_rtx.setdefault(q, t)
    out = []
    for a, b in zip(times, times[1:], strict=False):
        if b - a <= over_s or not (start <= b and a < end):
            continue
        held = [(t, q) for t, q in loss["gaps"] if t <= b and first_rtx.get(q, b + 1) > b - 0.005]
        held = [(t, q) for t, q in held if t >= a - 2.0]
        entry: dict[str, Any] = {"at_s": round(a - start, 2), "ms": round((b - a) * 1000), "held_by": None}
        if held:
            _, q = held[0]

            # How far past it the receiver already was when it sent each NACK naming it (the highest
            # sequence number received; older logs: the newest one the NACK names).
            def past(seqs: list[int], rest: list[Any], q: int = q) -> int:
                highest = (
                    rest[0] if rest and rest[0] is not None else max(seqs, key=lambda s: (s - q) % 65536)
                )
                return (highest - q) % 65536

            nacks = [(t, past(seqs, rest)) for t, seqs, *rest in loss["nacks"] if q in seqs]
            came = first_rtx.get(q)
            entry["held_by"] = {
                "seq": q,
                "nacks_ms_past": [[round((t - a) * 1000), n] for t, n in nacks],
                "rtx_ms": None if came is None else round((came - a) * 1000),
            }
        entry["plis_ms"] = [round((t - a) * 1000) for t in loss["plis"] if a - 0.5 <= t <= b + 0.01]
        out.append(entry)
    return out
