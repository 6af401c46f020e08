"""PNG plots of a bench run: latency CDFs per path, per-stage bars, the capacity curve, plain bars.

Drawn with matplotlib's object API (``Figure``, Agg canvas), never pyplot: no display,
no global figure state. What a suite hands over decides what is drawn (benchmarks.results
says how); a plot that cannot be drawn is skipped with a one-line reason.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchmarks.results import STAGES_KEY, SuiteResult, flatten

DPI = 110


def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)  # the Agg canvas: PNG without any display
    with warnings.catch_warnings():
        # A crowded figure that tight_layout cannot fit is still worth saving as it is.
        warnings.simplefilter("ignore", UserWarning)
        figure.tight_layout()
    figure.savefig(path, format="png", dpi=DPI)


LINES_PER_PANEL = 8  # more lines than this in one axes cannot be told apart


def latency_cdf(name: str, samples: Mapping[str, list[float]], path: Path) -> str | None:
    """One CDF line per path (in panels of up to 8 lines); returns why not when there is nothing
    to draw."""
    drawn = [(label, np.sort(np.asarray(values, dtype=float))) for label, values in samples.items() if values]
    if not drawn:
        return "every path's samples are empty"
    panels = [drawn[i : i + LINES_PER_PANEL] for i in range(0, len(drawn), LINES_PER_PANEL)]
    columns = min(2, len(panels))
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(7 * columns, 4.2 * rows))
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes, panel in zip(grid.flat, panels, strict=False):
        for label, ordered in panel:
            share = np.arange(1, len(ordered) + 1) / len(ordered)
            p50, p95 = np.percentile(ordered, [50, 95])
            axes.step(
                ordered,
                share,
                where="post",
                label=f"{label}: p50 {p50:.1f}, p95 {p95:.1f} ms, n={len(ordered)}",
            )
        axes.axhline(0.95, color="grey", linewidth=0.6, linestyle=":")
        axes.set_xlabel("glass-to-glass latency (ms)")
        axes.set_ylabel("share of frames at or below")
        axes.set_ylim(0, 1.01)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="x-small", loc="lower right")
    for axes in list(grid.flat)[len(panels) :]:
        axes.set_visible(False)
    figure.suptitle(f"{name}: latency CDF per path")
    _save(figure, path)
    return None


def stage_table(summary: Mapping[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """``{path: {stage: {"p50"?, "p95"}}}`` from the ``stages`` key, or from the latency suite's
    ``compose_p95_ms`` / ``encode_p95_ms`` figures when it hands over no stages."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    stages = summary.get(STAGES_KEY)
    if isinstance(stages, Mapping):
        for label, by_stage in stages.items():
            if not isinstance(by_stage, Mapping):
                continue
            cells = {
                str(stage): {q: float(v[q]) for q in ("p50", "p95") if isinstance(v.get(q), int | float)}
                for stage, v in by_stage.items()
                if isinstance(v, Mapping)
            }
            cells = {stage: qs for stage, qs in cells.items() if "p95" in qs}
            if cells:
                table[str(label)] = cells
        return table
    encode = summary.get("encode_p95_ms")
    if isinstance(encode, Mapping):
        for codec, ms in encode.items():
            if isinstance(ms, int | float):
                table.setdefault(f"server {codec}", {})["encode"] = {"p95": float(ms)}
    compose = summary.get("compose_p95_ms")
    if table and isinstance(compose, int | float):
        # The latency suite reports the compose time of its VP8 run only.
        table.setdefault("server vp8", {})["compose"] = {"p95": float(compose)}
    return table


def stage_bars(name: str, table: Mapping[str, Mapping[str, Mapping[str, float]]], path: Path) -> str | None:
    """For each path, one bar per stage (p95; p50 as a darker inner bar when given): stages are few,
    so each keeps one colour however many paths there are."""
    if not table:
        return "no per-stage timings (a 'stages' key, or the latency suite's encode/compose figures)"
    stages = list(dict.fromkeys(stage for by_stage in table.values() for stage in by_stage))
    labels = list(table)
    width = 0.8 / len(stages)
    figure = Figure(figsize=(max(6.0, 0.4 * len(labels) + 2), 4.6))
    axes = figure.add_subplot()
    x = np.arange(len(labels))
    values: list[float] = []
    for i, stage in enumerate(stages):
        p95 = [table[label].get(stage, {}).get("p95", np.nan) for label in labels]
        p50 = [table[label].get(stage, {}).get("p50", np.nan) for label in labels]
        offsets = x - 0.4 + width * (i + 0.5)
        bars = axes.bar(offsets, p95, width * 0.95, label=f"{stage}", alpha=0.55)
        axes.bar(offsets, p50, width * 0.5, color=bars.patches[0].get_facecolor(), alpha=1.0)
        values += [v for v in p95 if np.isfinite(v)]
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > 100:
        axes.set_yscale("symlog", linthresh=1.0)  # a 1 ms compose beside a 300 ms stall
    axes.set_xticks(
        x, labels, rotation=45 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center"
    )
    axes.tick_params(axis="x", labelsize="x-small" if len(labels) > 8 else "small")
    axes.set_ylabel("ms per frame (wide: p95, narrow: p50)")
    axes.set_title(f"{name}: time per stage")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize="x-small")
    _save(figure, path)
    return None


def capacity_steps(summary: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    """The capacity suite's measured steps by composite size (``steps_720p`` ...)."""
    found: dict[str, list[Mapping[str, Any]]] = {}
    for key, steps in summary.items():
        if key.startswith("steps_") and isinstance(steps, list):
            measured = [
                s
                for s in steps
                if isinstance(s, Mapping)
                and isinstance(s.get("calls"), int)
                and s.get("server_cpu_pct") is not None
            ]
            if measured:
                found[key.removeprefix("steps_")] = measured
    return found


def capacity_curve(steps: Mapping[str, list[Mapping[str, Any]]], path: Path) -> str | None:
    """Server CPU and glass-to-glass p95 against calls, one line per size; failed steps marked x."""
    if not steps:
        return "the capacity suite measured no step"
    figure = Figure(figsize=(7, 4.2))
    cpu_axes = figure.add_subplot()
    p95_axes = cpu_axes.twinx()
    for size, rows in steps.items():
        calls = [s["calls"] for s in rows]
        line = cpu_axes.plot(
            calls, [s["server_cpu_pct"] for s in rows], marker="o", label=f"{size} server CPU"
        )
        colour = line[0].get_color()
        p95 = [s.get("g2g_p95_ms") if s.get("g2g_p95_ms") is not None else np.nan for s in rows]
        p95_axes.plot(calls, p95, linestyle="--", color=colour, alpha=0.7, label=f"{size} g2g p95")
        failed = [s for s in rows if not s.get("passed")]
        cpu_axes.plot(
            [s["calls"] for s in failed],
            [s["server_cpu_pct"] for s in failed],
            "x",
            color="red",
            markersize=10,
            label=f"{size} step failed" if failed else None,
        )
    cpu_axes.set_xlabel("calls")
    cpu_axes.set_ylabel("server CPU (% of one core)")
    p95_axes.set_ylabel("glass-to-glass p95 (ms), dashed")
    cpu_axes.set_title("capacity: server CPU and latency as calls are added")
    cpu_axes.grid(alpha=0.3)
    handles = cpu_axes.get_legend_handles_labels()
    more = p95_axes.get_legend_handles_labels()
    cpu_axes.legend(handles[0] + more[0], handles[1] + more[1], fontsize="x-small", loc="upper left")
    _save(figure, path)
    return None


def scalar_figures(summary: Mapping[str, Any]) -> tuple[dict[str, float], str]:
    """A suite's figures for a plain bar plot, and the axis label: its millisecond figures
    (``*_ms``, top level and one level down, e.g. a network profile's ``mobile.g2g_p95_ms``),
    or its top-level numbers when it has none. Its ``targets`` are limits, not figures."""
    numbers = {
        name: float(value)
        for name, value in flatten(summary, depth=1)
        if isinstance(value, int | float)
        and not isinstance(value, bool)
        and np.isfinite(value)
        and not name.startswith("targets")
    }
    in_ms = {name: value for name, value in numbers.items() if _MS.search(name)}
    if in_ms:
        return in_ms, "ms"
    return {name: value for name, value in numbers.items() if "." not in name}, "as reported (mixed units)"


_MS = re.compile(r"_ms(?![a-z])")


def figure_bars(name: str, summary: Mapping[str, Any], path: Path) -> str | None:
    figures, unit = scalar_figures(summary)
    if not figures:
        return "no numeric figures"
    figure = Figure(figsize=(7.5, max(2.5, 0.26 * len(figures) + 1.2)))
    axes = figure.add_subplot()
    names = list(figures)
    values = [figures[n] for n in names]
    axes.barh(names, values, color="tab:blue", alpha=0.7)
    for y, value in enumerate(values):
        axes.annotate(f" {value:g}", (value, y), va="center", fontsize="xx-small")
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > 100:
        # 3 ms beside 3,000 ms: a log axis keeps both readable (symlog: zero stays drawable).
        axes.set_xscale("symlog", linthresh=1.0)
        unit += ", log scale"
    axes.invert_yaxis()
    axes.tick_params(axis="y", labelsize="x-small")
    axes.set_xlabel(unit)
    axes.set_title(f"{name}: figures")
    axes.grid(axis="x", alpha=0.3)
    _save(figure, path)
    return None


def write_plots(results: list[SuiteResult], directory: Path) -> dict[str, Any]:
    """Every plot the results allow, as PNGs in ``directory``: ``{"written": [file names],
    "skipped": {plot: one-line reason}}``."""
    written: list[str] = []
    skipped: dict[str, str] = {}

    def attempt(file: str, draw, *args) -> bool:
        try:
            why = draw(*args, directory / file)
        except Exception as exc:  # a plot must never lose the run's results
            why = f"drawing failed: {type(exc).__name__}: {exc}"
        if why is None:
            written.append(file)
            return True
        skipped[file] = why
        return False

    ran = {r.name for r in results}
    for r in results:
        if not r.ok or r.summary is None:
            skipped[f"{r.name} plots"] = "the suite failed"
            continue
        dedicated = False
        if r.samples:
            dedicated |= attempt(f"latency_cdf_{r.name}.png", latency_cdf, r.name, r.samples)
        else:
            skipped[f"latency_cdf_{r.name}.png"] = "the suite hands over no 'samples' (benchmarks/results.py)"
        table = stage_table(r.summary)
        if table:
            dedicated |= attempt(f"stages_{r.name}.png", stage_bars, r.name, table)
        else:
            skipped[f"stages_{r.name}.png"] = "no per-stage timings ('stages' key)"
        steps = capacity_steps(r.summary)
        if steps or r.name == "capacity":
            dedicated |= attempt("capacity_curve.png", capacity_curve, steps)
        if not dedicated:
            attempt(f"figures_{r.name}.png", figure_bars, r.name, r.summary)
    if "capacity" not in ran:
        skipped["capacity_curve.png"] = "the capacity suite did not run"
    return {"written": written, "skipped": skipped}
