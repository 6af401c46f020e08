"""Pure: one call's page records -> its figures; several calls -> the suite's summary and targets."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from benchmarks import browser_metrics as m

TIMELINE_EVERY_S = 2.0


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _in(t: float, t0: float, t1: float) -> bool:
    return t0 <= t < t1


def _timeline(stats: Sequence[dict[str, Any]], since: float | None, until: float) -> list[list[Any]]:
    """The sender's video every ~2 s: [s since connected, width, height, fps, BWE kbps, limitation]."""
    rows: list[list[Any]] = []
    next_t = since or 0.0
    for s in stats:
        if since is None or s["t"] < next_t or s["t"] > until:
            continue
        out = s.get("out") or {}
        kbps = m.bwe_kbps(s)
        rows.append(
            [
                round((s["t"] - since) / 1000, 1),
                out.get("w"),
                out.get("h"),
                out.get("fps"),
                None if kbps is None else round(kbps),
                out.get("qlr"),
            ]
        )
        next_t = s["t"] + TIMELINE_EVERY_S * 1000 - 150
    return rows


def analyse(call: dict[str, Any]) -> dict[str, Any]:
    """One call's figures from what its two pages recorded (see browser_probes.collect)."""
    sent, received, marks = call["sent"], call["received"], call["marks"]
    q0, q1, l0, l1 = marks["quiet_t0"], marks["quiet_t1"], marks["loaded_t0"], marks["loaded_t1"]
    captured = {int(i): float(t) for i, t in sent["frames"]}
    frames = [m.Presented.from_record(r) for r in received["presented"]]
    quiet = m.video_window(captured, frames, q0, q1)
    loaded = m.video_window(captured, frames, l0, l1)

    # Flash and beep of each second: video latency, voice latency, and audio minus video.
    flash_sent = {int(i) // m.FLASH_EVERY: float(t) for i, t in sent["flashes"]}
    flash_seen, flash_misreads = m.flash_arrivals(frames)
    beep_sent = [float(rendered) for rendered, _ in sent["beeps"]]
    heard = m.match_beeps(beep_sent, [float(played) for _, played in received["onsets"]])
    second_of = m.beep_seconds(beep_sent, flash_sent)
    voice, av, skew = [], [], []
    for index, at in enumerate(beep_sent):
        if not _in(at, q0, q1) or index not in heard:
            continue
        voice.append(heard[index] - at)
        second = second_of.get(index)
        if second is not None and second in flash_seen:
            video = flash_seen[second] - flash_sent[second]
            av.append(voice[-1] - video)
            skew.append(at - flash_sent[second])

    tx, rx = sent["stats"], received["stats"]
    connected = next((p["connected"] for p in reversed(sent["pcs"]) if p["connected"]), None)
    first_frame = next((f.display_ms for f in frames if f.frame_id is not None), None)
    codec_rx = m.value_at(rx, q1, lambda s: (s.get("vin") or {}).get("codec"))
    return {
        "p50_ms": _round(m.percentile(quiet.latencies, 50)),
        "p95_ms": _round(m.percentile(quiet.latencies, 95)),
        "frames": len(quiet.latencies),
        # Every new picture shown in the window should give a latency; an unreadable stamp or a
        # frame that changed while it was read (raced) is a failed sample, counted.
        "samples_expected": quiet.presented + quiet.raced - quiet.repeated,
        "fps_shown": _round(len(quiet.latencies) / (q1 - q0) * 1000),
        "fps_composited": _round(m.composited_fps(frames, q0, q1)),
        "loaded_fps_composited": _round(m.composited_fps(frames, l0, l1)),
        "bunched_share": _round(m.bunched_share(frames, q0, q1), 3),
        "loaded_bunched_share": _round(m.bunched_share(frames, l0, l1), 3),
        "fps_decoded": _round(m.rate(rx, q0, q1, lambda s: (s.get("vin") or {}).get("frames"))),
        "receive_p50_ms": _round(m.percentile(quiet.received, 50)),
        # Consecutive frames' spacing on the wire and in the renderer against their capture spacing.
        "rtp_spacing_error_p95_ms": _round(
            m.percentile(m.spacing_error_ms(captured, frames, q0, q1, "rtp"), 95)
        ),
        "media_spacing_error_p95_ms": _round(
            m.percentile(m.spacing_error_ms(captured, frames, q0, q1, "media"), 95)
        ),
        "capture_time_p50_ms": _round(m.percentile(quiet.by_capture_time, 50)),
        "presented": quiet.presented,
        "repeated_frames": quiet.repeated,
        "unreadable_frames": quiet.unreadable,
        "raced_frames": quiet.raced,
        "loaded_p50_ms": _round(m.percentile(loaded.latencies, 50)),
        "loaded_p95_ms": _round(m.percentile(loaded.latencies, 95)),
        "loaded_frames": len(loaded.latencies),
        "loaded_receive_p50_ms": _round(m.percentile(loaded.received, 50)),
        "loaded_receive_p95_ms": _round(m.percentile(loaded.received, 95)),
        "loaded_repeated_frames": loaded.repeated,
        "voice_ms": _round(m.median(voice)),
        "voice_p95_ms": _round(m.percentile(voice, 95)),
        "beeps": len(voice),
        "beeps_sent": sum(1 for t in beep_sent if _in(t, q0, q1)),
        "av_offset_ms": _round(m.median(av)),
        "av_pairs": len(av),
        "capture_skew_ms": _round(m.median(skew)),
        "flash_misreads": flash_misreads,
        "bwe_end_kbps": _round(m.value_at(tx, q1, m.bwe_kbps), 0),
        "bwe_2mbps_s": _round(m.first_reach(tx, connected, lambda s: (m.bwe_kbps(s) or 0) >= 2000, q1), 2),
        "agent_720p_s": _round(m.first_reach(tx, connected, m.is_720p, q1), 2),
        "agent_720p_share": m.share(tx, q0, q1, m.is_720p).get("True", 0.0),
        "limitation": m.share(tx, q0, q1, lambda s: (s.get("out") or {}).get("qlr")),
        "sent_fps": _round(m.median((s.get("out") or {}).get("fps") for s in tx if _in(s["t"], q0, q1))),
        "first_frame_s": _round(
            None if connected is None or first_frame is None else (first_frame - connected) / 1000, 2
        ),
        "jitter_buffer_ms": _round(m.jitter_buffer_ms(rx, q0, q1)),
        "loaded_jitter_buffer_ms": _round(m.jitter_buffer_ms(rx, l0, l1)),
        "audio_jitter_buffer_ms": _round(m.jitter_buffer_ms(rx, q0, q1, key="ain")),
        # Diagnostics for the loaded window: what each buffer aimed at, and the floor lip sync set.
        "buffers": {
            f"{window}_{kind}_{delay}": _round(m.jitter_buffer_ms(rx, t0, t1, key=key, delay=delay))
            for window, t0, t1 in (("quiet", q0, q1), ("loaded", l0, l1))
            for kind, key in (("video", "vin"), ("audio", "ain"))
            for delay in ("jbd", "jbt", "jbm", *(("proc",) if key == "vin" else ()))
        },
        "audio_jitter_ms": _round(_ms(m.value_at(rx, q1, lambda s: (s.get("ain") or {}).get("jitter")))),
        "video_jitter_ms": _round(_ms(m.value_at(rx, q1, lambda s: (s.get("vin") or {}).get("jitter")))),
        "one_stream": m.one_stream(received.get("msid") or []),
        "codec": codec_rx,
        "codec_sent": m.value_at(tx, q1, lambda s: (s.get("out") or {}).get("codec")),
        "received_size": m.value_at(rx, q1, lambda s: _size(s.get("vin"))),
        "timeline": _timeline(tx, connected, l1),
        "server_cpu_pct": {k: round(v, 1) for k, v in call.get("server_cpu_pct", {}).items()},
        "browser_cpu_pct": call.get("browser_cpu_pct", {}),
        "errors": sorted(set(received["errors"] + sent["errors"] + call.get("page_errors", []))),
        "load_avg": call.get("load_avg"),
        "receipt": (call.get("receipt") or {}).get("quiet"),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _size(stats: dict[str, Any] | None) -> str | None:
    return f"{stats['w']}x{stats['h']}" if stats and stats.get("w") else None


def median_or_never(values: Sequence[float | None]) -> float | None:
    """Median where None means "never" (later than any time): None if the median run never got there."""
    if not values:
        return None
    middle = statistics.median_high([math.inf if v is None else v for v in values])
    return None if math.isinf(middle) else middle


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def summarise(runs: Sequence[dict[str, dict[str, Any]]], window_s: float) -> dict[str, Any]:
    """Medians over the runs (never the best run), the targets, and each run's own figures."""
    server = [r["server"] for r in runs]
    direct = [r["direct"] for r in runs]

    def med(rows: list[dict[str, Any]], key: str, digits: int = 1) -> float | None:
        return _round(m.median(row[key] for row in rows), digits)

    out: dict[str, Any] = {"n": len(runs), "window_s": window_s}
    for prefix, rows in (("server_", server), ("direct_", direct)):
        out[f"{prefix}p50_ms"] = med(rows, "p50_ms")
        out[f"{prefix}p95_ms"] = med(rows, "p95_ms")
    out["ratio_p50"] = _round(
        m.median(_ratio(s["p50_ms"], d["p50_ms"]) for s, d in zip(server, direct, strict=True)), 3
    )
    for prefix, rows in (("", server), ("direct_", direct)):
        for key in ("voice_ms", "av_offset_ms", "jitter_buffer_ms", "repeated_frames", "loaded_p95_ms"):
            out[f"{prefix}{key}"] = med(rows, key)
        out[f"{prefix}loaded_jitter_buffer_ms"] = med(rows, "loaded_jitter_buffer_ms")
        out[f"{prefix}bwe_end_kbps"] = med(rows, "bwe_end_kbps", 0)
        out[f"{prefix}bwe_2mbps_s"] = _round(median_or_never([r["bwe_2mbps_s"] for r in rows]), 2)
        out[f"{prefix}frames"] = sum(r["frames"] for r in rows)
        out[f"{prefix}samples_expected"] = sum(r["samples_expected"] for r in rows)
        out[f"{prefix}beeps"] = sum(r["beeps"] for r in rows)
    out["samples_expected"] = out["samples_expected"] + out["direct_samples_expected"]
    out["samples_measured"] = out["frames"] + out["direct_frames"]
    out["agent_720p_s"] = _round(median_or_never([r["agent_720p_s"] for r in server]), 2)
    out["direct_720p_s"] = _round(median_or_never([r["agent_720p_s"] for r in direct]), 2)
    out["server_codec"] = server[0]["codec"] if server else None
    out["direct_codec"] = direct[0]["codec"] if direct else None
    out["server_cpu_pct"] = _round(m.median(r["server_cpu_pct"].get("quiet") for r in server))
    # What each path costs the two browsers, quiet window (the same Chromiums serve both paths).
    for prefix, rows in (("", server), ("direct_", direct)):
        for side in ("agent", "customer"):
            cpu = (r.get("browser_cpu_pct", {}).get("quiet", {}).get(side) for r in rows)
            out[f"{prefix}{side}_browser_cpu_pct"] = _round(m.median(cpu))
    out["targets"] = targets(out)
    out["runs"] = [{"server": _brief(r["server"]), "direct": _brief(r["direct"])} for r in runs]
    return out


def _brief(call: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in call.items() if v not in (None, [], {})}


def targets(s: dict[str, Any]) -> dict[str, bool]:
    """The issue's targets, each False when a figure it needs is missing."""

    def known(*keys: str) -> bool:
        return all(s.get(k) is not None for k in keys)

    def within(value: float | None, limit: float) -> bool:
        return value is not None and value <= limit

    direct_2m = s.get("direct_bwe_2mbps_s")
    direct_720 = s.get("direct_720p_s")
    return {
        "voice": known("voice_ms", "direct_voice_ms") and s["voice_ms"] <= s["direct_voice_ms"] + 20,
        "av_sync": known("av_offset_ms", "direct_av_offset_ms")
        and -45 <= s["av_offset_ms"] <= 125
        and abs(s["av_offset_ms"] - s["direct_av_offset_ms"]) <= 40,
        "latency_ratio": within(s.get("ratio_p50"), 1.15),
        "bwe": known("bwe_end_kbps", "direct_bwe_end_kbps")
        and s["bwe_end_kbps"] >= 0.8 * s["direct_bwe_end_kbps"]
        and within(s.get("bwe_2mbps_s"), max(3.0, 1.5 * direct_2m) if direct_2m is not None else 3.0),
        "agent_720p": direct_720 is None or within(s.get("agent_720p_s"), max(2.0, 1.5 * direct_720)),
        "loaded": known("loaded_p95_ms", "server_p95_ms") and s["loaded_p95_ms"] <= 1.5 * s["server_p95_ms"],
    }
