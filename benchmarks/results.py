"""A bench run's results: what suites may hand over for plots, and the files written for a run.

The summary a suite's ``run(quick)`` returns may carry two OPTIONAL keys, for plots:

- ``"samples"``: ``{path: [ms, ...]}``, the raw latency samples of each measured path
  (e.g. ``{"direct": [...], "server": [...]}``). Taken OUT of the summary before it is
  printed or saved in summary.json (it can be large); saved in samples.json instead and
  drawn as a latency CDF per path.
- ``"stages"``: ``{path: {stage: {"p50": ms, "p95": ms, "count": n}}}``, per-stage timings
  in the shape of ``media.receipt.LatencyReceipt.summary()`` (e.g.
  ``{"server vp8": room.compositor.receipt.summary()}``). Kept in the summary (it is
  small) and drawn as per-stage bars.

A suite that adds neither keeps working: its figures get a plain bar plot. Malformed
samples are dropped with a note in the results, never a crash.
"""

from __future__ import annotations

import json
import math
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.samples import loss_problem

SAMPLES_KEY = "samples"
STAGES_KEY = "stages"


def split_samples(summary: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, list[float]], list[str]]:
    """``summary`` without its ``"samples"``, the valid samples, and a note for each dropped path."""
    rest = {key: value for key, value in summary.items() if key != SAMPLES_KEY}
    raw = summary.get(SAMPLES_KEY)
    if raw is None:
        return rest, {}, []
    if not isinstance(raw, Mapping):
        return rest, {}, [f"'{SAMPLES_KEY}' is a {type(raw).__name__}, not {{path: [ms, ...]}}: dropped"]
    samples: dict[str, list[float]] = {}
    notes: list[str] = []
    for path, values in raw.items():
        try:
            numbers = [float(v) for v in values]
        except (TypeError, ValueError):
            notes.append(f"samples of {path!r} are not a list of numbers: dropped")
            continue
        finite = [v for v in numbers if math.isfinite(v)]
        if len(finite) < len(numbers):
            notes.append(f"samples of {path!r}: {len(numbers) - len(finite)} non-finite value(s) dropped")
        samples[str(path)] = finite
    return rest, samples, notes


@dataclass
class SuiteResult:
    """One suite's outcome in a bench run: its summary, or the error that stopped it."""

    name: str
    summary: dict[str, Any] | None = None
    error: str | None = None
    traceback: str | None = None
    seconds: float = 0.0
    load_before: list[float] = field(default_factory=list)
    load_after: list[float] = field(default_factory=list)
    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Why the run fails on its sample count (benchmarks.samples: > 1 % lost), as
    # ``python -m benchmarks`` judges it; the figures are still kept.
    lost: str | None = None

    @property
    def ok(self) -> bool:
        """It ran and returned a summary."""
        return self.error is None

    @property
    def passed(self) -> bool:
        """It ran, and lost no more samples than a run may."""
        return self.ok and self.lost is None

    @property
    def outcome(self) -> str:
        if not self.ok:
            return f"failed: {self.error}"
        return f"failed on its sample count (figures kept): {self.lost}" if self.lost else "ok"

    @classmethod
    def failed(cls, name: str, exc: BaseException, **timing: Any) -> SuiteResult:
        return cls(
            name,
            error=f"{type(exc).__name__}: {exc}",
            traceback="".join(traceback.format_exception(exc)),
            **timing,
        )

    @classmethod
    def from_summary(cls, name: str, summary: Any, **timing: Any) -> SuiteResult:
        if not isinstance(summary, Mapping):
            return cls(name, error=f"run() returned a {type(summary).__name__}, not a dict", **timing)
        rest, samples, notes = split_samples(summary)
        try:
            json.dumps(rest)
        except (TypeError, ValueError) as exc:
            return cls(name, error=f"the summary is not JSON: {exc}", **timing)
        return cls(name, summary=rest, samples=samples, notes=notes, lost=loss_problem(rest), **timing)

    def record(self) -> dict[str, Any]:
        """This suite's entry in summary.json."""
        entry: dict[str, Any] = {
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "load_before": self.load_before,
            "load_after": self.load_after,
        }
        if self.ok:
            entry["summary"] = self.summary
            entry["samples_saved"] = {path: len(values) for path, values in self.samples.items()}
        else:
            entry["error"] = self.error
            entry["traceback"] = self.traceback
        if self.lost:
            entry["lost_samples"] = self.lost
        if self.notes:
            entry["notes"] = self.notes
        return entry


def new_run_dir(parent: Path, stamp: str) -> Path:
    """``parent/stamp``, or ``stamp-2``, ``-3``... when a run in the same second took it."""
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free run directory for {stamp} in {parent}")


def write_json(directory: Path, header: dict[str, Any], results: list[SuiteResult]) -> None:
    """summary.json (every suite's summary or error, plus ``header``: machine facts, options) and,
    when any suite handed samples over, samples.json."""
    document = {**header, "suites": {r.name: r.record() for r in results}}
    (directory / "summary.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    samples = {r.name: r.samples for r in results if r.samples}
    if samples:
        (directory / "samples.json").write_text(json.dumps(samples) + "\n")


# -- Markdown ----------------------------------------------------------------

MAX_CELL = 120


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        text = f"{len(value)} rows (below)"
    elif isinstance(value, str) and "\n" in value:
        text = "(below)"
    elif isinstance(value, list | Mapping):
        text = json.dumps(value)
    else:
        text = str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def flatten(summary: Mapping[str, Any], prefix: str = "", depth: int = 2) -> list[tuple[str, Any]]:
    """``(dotted name, value)`` rows: nested dicts opened ``depth`` levels deep, the rest shown whole."""
    rows: list[tuple[str, Any]] = []
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and depth > 0:
            rows.extend(flatten(value, f"{name}.", depth - 1))
        else:
            rows.append((name, value))
    return rows


def markdown(header: dict[str, Any], results: list[SuiteResult], plots: Mapping[str, Any]) -> str:
    """summary.md: the machine, an overview of the suites, then one table of figures per suite."""
    machine = header["machine"]
    lines = [
        f"# telepresence bench, {header['created']}{' (--quick)' if header.get('quick') else ''}",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPU | {_cell(machine['cpu_model'])} |",
        f"| cores | {machine['cores']} ({machine['cores_usable']} usable) |",
        f"| load at start (1/5/15 min) | {_cell(machine['load_avg'])} |",
        f"| OS, Python | {_cell(machine['os'])}, {machine['python']} |",
        *(f"| {name} | {_cell(version)} |" for name, version in machine["versions"].items()),
        f"| Chromium | {_cell(machine['chromium'] or 'not found')} |",
        "",
        "| suite | result | time | load (1 min) before -> after |",
        "|---|---|---|---|",
    ]
    for r in results:
        outcome = "ok" if r.passed else f"**{_cell(r.outcome)}**"
        load = f"{_first(r.load_before)} -> {_first(r.load_after)}"
        lines.append(f"| {r.name} | {outcome} | {r.seconds:.0f} s | {load} |")
    for r in results:
        lines += ["", f"## {r.name}", ""]
        if not r.ok:
            lines += [f"Failed: `{_cell(r.error)}` (traceback in summary.json)."]
            continue
        assert r.summary is not None
        lines += ["| figure | value |", "|---|---|"]
        lines += [f"| {name} | {_cell(value)} |" for name, value in flatten(r.summary)]
        lines += _row_tables(r.summary)
        if r.samples:
            counts = ", ".join(f"{path} {len(values)}" for path, values in r.samples.items())
            lines += ["", f"Samples handed over (samples.json): {counts}."]
        lines += [f"- note: {note}" for note in r.notes]
    written, skipped = plots.get("written", []), plots.get("skipped", {})
    if written or skipped:
        lines += ["", "## plots", ""]
        lines += [f"![{name}]({name})" for name in written]
        lines += [f"- skipped {name}: {why}" for name, why in skipped.items()]
    return "\n".join(lines) + "\n"


def _row_tables(summary: Mapping[str, Any]) -> list[str]:
    """A table for each top-level list of records (the capacity suite's steps, tune's points), and
    a code block for each text of several lines (tune's TOML)."""
    lines: list[str] = []
    for key, value in summary.items():
        if isinstance(value, str) and "\n" in value:
            lines += ["", f"### {key}", "", "~~~", value.rstrip("\n"), "~~~"]
            continue
        if not (isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value)):
            continue
        columns = list(dict.fromkeys(k for row in value for k in row))
        lines += ["", f"### {key}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in value]
    return lines


def _first(values: list[float]) -> str:
    return f"{values[0]:g}" if values else "?"
