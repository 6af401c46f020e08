"""Pure: a tuning sweep's figures -> which settings meet a latency target, as ``--config`` TOML.

A point meets the target when its glass-to-glass p95 (median over rounds) is at most the
target, the customer got at least 90 % of the frame rate, and at least 99 % of the frames
it decoded carried a readable stamp (a point that lost more than 1 % of its samples is not
judged on the rest, as issue 14 asks of every suite). Only points measured at the bitrate
range ``serve`` runs (:data:`SERVED`: the bitrate has no setting) can be suggested: a point
at another ceiling describes a server the TOML cannot make. Of those, the one with the most
pixels wins, then the higher frame rate, then the lower p95: the best picture that is still
fast enough.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from media.bitrate import Bitrate
from media.layout import SIZES

# What `telepresence serve` runs every encoder with (no setting changes it): the range a
# suggested point must have been measured with.
SERVED = Bitrate()
SERVED_KBPS = SERVED.max // 1000

MIN_FPS_SHARE = 0.9
MIN_STAMPED_SHARE = 0.99


@dataclass(frozen=True)
class Point:
    """One setting of the sweep: the composite's size, frame rate, codec and bitrate ceiling."""

    size: str  # a telepresence.config video_size: 360p, 540p, 720p, 1080p
    fps: int
    codec: str  # VP8 or H264
    kbps: int

    @property
    def label(self) -> str:
        return f"{self.size}{self.fps} {self.codec} {self.kbps}k"

    @property
    def pixels(self) -> int:
        size = SIZES[self.size]
        return size.width * size.height


@dataclass(frozen=True)
class Figures:
    """A point's figures: medians over its rounds, counts summed over them."""

    point: Point
    p50_ms: float | None
    p95_ms: float | None
    fps_measured: float  # frames a second the customer decoded
    samples: int  # frames with a readable stamp (latency samples)
    frames: int  # frames the customer decoded
    frames_expected: int  # what the camera sent over the windows: fps x window x rounds
    encode_p95_ms: float | None = None
    rounds: int = 1
    codecs: list[str] = field(default_factory=list)  # what was negotiated (the room's preference)
    errors: list[str] = field(default_factory=list)  # rounds that could not run, and why


def why_not(figures: Figures, target_ms: float) -> str | None:
    """Why a point misses the target, or None when it meets it."""
    point = figures.point
    if figures.errors:
        return f"{len(figures.errors)} round(s) failed: {figures.errors[0]}"
    if figures.p95_ms is None or figures.samples == 0:
        return "no latency samples"
    if figures.codecs and figures.codecs != [point.codec]:
        return f"negotiated {'/'.join(figures.codecs)}, not {point.codec}"
    if figures.samples < MIN_STAMPED_SHARE * figures.frames:
        # Unreadable after coding, or composites the fallback clock made while the camera was late.
        return f"only {figures.samples} of {figures.frames} frames carried the camera's stamp"
    if figures.fps_measured < MIN_FPS_SHARE * point.fps:
        return f"{figures.fps_measured:g} fps of {point.fps}"
    if figures.p95_ms > target_ms:
        return f"p95 {figures.p95_ms:g} ms > {target_ms:g} ms"
    return None


def _rank(figures: Figures) -> tuple[int, int, float]:
    point = figures.point
    return (point.pixels, point.fps, -(figures.p95_ms or 0.0))


def choose(figures: list[Figures], target_ms: float, served_kbps: int = SERVED_KBPS) -> Figures | None:
    """The best picture among the points measured at ``served_kbps`` that meet ``target_ms``;
    None if none does."""
    meeting = [f for f in figures if f.point.kbps == served_kbps and why_not(f, target_ms) is None]
    return max(meeting, key=_rank) if meeting else None


def _describe(figures: Figures) -> str:
    point = figures.point
    return (
        f"{point.size} {point.fps} fps {point.codec}, bitrate ceiling {point.kbps} kbps: "
        f"p50 {figures.p50_ms} ms, p95 {figures.p95_ms} ms, {figures.fps_measured} fps, "
        f"n={figures.samples} over {figures.rounds} round(s)"
    )


def toml_snippet(
    chosen: Figures | None,
    target_ms: float,
    fallback: Figures | None = None,
    served_kbps: int = SERVED_KBPS,
) -> str:
    """Settings for ``telepresence --config FILE serve``; commented out when nothing met the target."""
    header = f"# telepresence bench tune: glass-to-glass p95 <= {target_ms:g} ms through the server here"
    shown = chosen or fallback
    if shown is None:
        return (
            f"{header}\n# no point of the sweep was measured at the bitrate ceiling serve runs"
            f" ({served_kbps} kbps): no settings to suggest\n"
        )
    point = shown.point
    settings = [
        f'video_size = "{point.size}"',
        f"video_fps = {point.fps}",
        f'video_codec = "{point.codec}"',
    ]
    lines = [header]
    if chosen is None:
        lines.append(f"# NO setting met the target. The lowest p95 measured was {_describe(shown)}.")
        lines.append("# Uncomment to use it anyway:")
        settings = [f"# {line}" for line in settings]
    else:
        lines.append(f"# chosen: {_describe(shown)}")
    lines.extend(settings)
    lines.append(
        f"# Measured at the bitrate range serve runs ({SERVED.min // 1000}-{point.kbps} kbps, start"
        f" {SERVED.start // 1000}): it has no\n# setting; points at other ceilings are figures to"
        " compare, never suggested."
    )
    return "\n".join(lines) + "\n"


def _row(figures: Figures, target_ms: float, served_kbps: int) -> dict[str, Any]:
    """One point's row: its setting first, then its figures and verdict (``served``: measured
    at the ceiling serve runs, so it may be suggested)."""
    figures_only = asdict(figures)
    setting = figures_only.pop("point")
    verdict = why_not(figures, target_ms)
    return {
        "label": figures.point.label,
        **setting,
        **figures_only,
        "meets": verdict is None,
        "why_not": verdict,
        "served": figures.point.kbps == served_kbps,
    }


def advise(figures: list[Figures], target_ms: float, served_kbps: int = SERVED_KBPS) -> dict[str, Any]:
    """The tune summary: the chosen settings, the TOML, every point's figures and counts."""
    if not target_ms > 0:  # also refuses NaN
        raise ValueError(f"the latency target must be above 0 ms, not {target_ms!r}")
    chosen = choose(figures, target_ms, served_kbps)
    measured = [f for f in figures if f.p95_ms is not None and f.point.kbps == served_kbps]
    fallback = min(measured, key=lambda f: f.p95_ms or 0.0) if measured else None
    return {
        "target_ms": target_ms,
        "met": chosen is not None,
        "chosen": chosen.point.label if chosen else None,
        "chosen_p50_ms": chosen.p50_ms if chosen else None,
        "chosen_p95_ms": chosen.p95_ms if chosen else None,
        "points_meeting": sum(why_not(f, target_ms) is None for f in figures),
        "served_kbps": served_kbps,
        "points": [_row(f, target_ms, served_kbps) for f in figures],
        # Lost samples (unreadable stamps) are judged per point (why_not), not for the sweep:
        # one fragile setting must not fail the others' figures.
        "frames_decoded": sum(f.frames for f in figures),
        "frames_stamped": sum(f.samples for f in figures),
        "toml": toml_snippet(chosen, target_ms, fallback, served_kbps),
    }
