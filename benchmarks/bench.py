"""``telepresence bench [SUITE] [--quick] [--out DIR]`` and ``telepresence bench tune``.

Runs one suite (as ``python -m benchmarks SUITE`` does) or all of them one after another
in this process, through the same interface: ``run(quick) -> dict``. A suite that fails is
recorded with its error and the others still run. Each run writes
``benchmarks/results/<UTC timestamp>/`` (or ``--out DIR/<timestamp>/``): summary.json
(machine facts and every suite's summary or error), samples.json (raw samples, when a
suite hands them over), summary.md (a table per suite) and PNG plots (benchmarks.plots).

stdout: the machine facts, each suite's outcome, the plots, the run directory, and LAST the
summary as one JSON line (one suite: its summary, exactly as ``python -m benchmarks``
prints it; all: ``{suite: summary}``). ``tune`` prints TOML instead, comments and all, so
``telepresence bench tune > tuned.toml`` is a file ``telepresence --config tuned.toml serve`` reads.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import SUITES
from benchmarks.machine import describe, load_average, machine_facts
from benchmarks.results import SuiteResult, markdown, new_run_dir, write_json

if TYPE_CHECKING:
    from benchmarks.tune import Plan

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
DEFAULT_TARGET_MS = 50.0


def _say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def measure(name: str, run: Callable[[], Any]) -> SuiteResult:
    """Call ``run`` (a suite's, or the tune sweep's); any failure is the result's error."""
    load_before, started = load_average(), time.monotonic()

    def timing() -> dict[str, Any]:
        return {
            "seconds": time.monotonic() - started,
            "load_before": load_before,
            "load_after": load_average(),
        }

    try:
        summary = run()
    except (Exception, SystemExit) as exc:  # one suite's failure must not lose the others' results
        result = SuiteResult.failed(name, exc, **timing())
        _say(f"{name} FAILED after {result.seconds:.0f} s: {result.error}")
        return result
    return SuiteResult.from_summary(name, summary, **timing())


def takes_camera(run: Callable[..., Any]) -> bool:
    """Whether a suite's ``run`` takes ``camera`` (a device or file as the agent's camera)."""
    return "camera" in inspect.signature(run).parameters


def run_suite(
    name: str, quick: bool, suites: Mapping[str, str] = SUITES, camera: str | None = None
) -> SuiteResult:
    """Import and run one suite, as ``python -m benchmarks`` does (``camera`` to a suite that takes
    one); an import error is its error too."""
    ignored: list[str] = []

    def call() -> Any:
        module = importlib.import_module(suites[name])
        if camera is not None and takes_camera(module.run):
            return module.run(quick=quick, camera=camera)
        if camera is not None:
            ignored.append(f"ran with its own source: its run() takes no camera, so not {camera}")
        return module.run(quick=quick)

    result = measure(name, call)
    result.notes += ignored
    return result


def run_suites(
    names: list[str],
    quick: bool,
    suites: Mapping[str, str] = SUITES,
    after_each: Callable[[list[SuiteResult]], None] | None = None,
    camera: str | None = None,
) -> list[SuiteResult]:
    """The suites one after another; ``after_each`` gets the results so far (to save them)."""
    results: list[SuiteResult] = []
    for name in names:
        _say(f"{name}{' --quick' if quick else ''} ({len(results) + 1}/{len(names)})")
        results.append(run_suite(name, quick, suites, camera))
        if after_each is not None:
            after_each(results)
    return results


def run_directory(out: Path, suffix: str = "") -> Path:
    """A new ``out/<UTC timestamp><suffix>/``, made before anything runs: a place that cannot be
    written is said at once, not after minutes of measuring."""
    try:
        return new_run_dir(out, datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + suffix)
    except OSError as exc:
        raise ValueError(f"cannot write results under {out}: {exc}") from None


def write_run(results: list[SuiteResult], directory: Path, header: dict[str, Any]) -> dict[str, Any]:
    """summary.json, samples.json, the plots and summary.md in ``directory``; the plots' record."""
    write_json(directory, header, results)  # first: a failing plot must not lose the figures
    try:
        from benchmarks.plots import write_plots  # matplotlib loads only when results are written
    except ImportError as exc:
        plots: dict[str, Any] = {
            "written": [],
            "skipped": {"all plots": f"{exc} (pip install 'telepresence[bench]' brings matplotlib)"},
        }
    else:
        plots = write_plots(results, directory)
    header = {**header, "plots": plots}
    write_json(directory, header, results)
    (directory / "summary.md").write_text(markdown(header, results, plots))
    return plots


def _header(quick: bool, facts: dict[str, Any], **more: Any) -> dict[str, Any]:
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return {"created": created, "quick": quick, "machine": facts, **more}


def bench(
    suite: str | None,
    quick: bool,
    out: Path = DEFAULT_OUT,
    suites: Mapping[str, str] = SUITES,
    camera: str | None = None,
) -> int:
    """Run ``suite`` (all when None), write the results, print the report; 1 if any suite failed
    or lost more than 1 % of its samples. ``camera``: the agent's camera for the suites that
    take one (``python -m benchmarks --camera``); one suite that takes none is refused."""
    names = [suite] if suite else list(suites)
    unknown = [name for name in names if name not in suites]
    if unknown:
        raise ValueError(f"unknown suite {unknown[0]!r}: one of {', '.join(sorted(suites))}")
    if camera is not None and suite and not takes_camera(importlib.import_module(suites[suite]).run):
        raise ValueError(f"the {suite} suite takes no --camera (python -m benchmarks says which do)")
    directory = run_directory(out)
    facts = machine_facts()
    header = _header(quick, facts, suites_asked=names)
    # summary.json after each suite: what was measured survives a crash or a Ctrl-C later on.
    results = run_suites(
        names, quick, suites, after_each=lambda done: write_json(directory, header, done), camera=camera
    )
    facts["load_avg_end"] = load_average()
    plots = write_run(results, directory, header)
    print("Machine:")
    for line in describe(facts):
        print(f"  {line}")
    print(f"  load at the end: {' / '.join(f'{v:g}' for v in facts['load_avg_end'])}")
    for r in results:
        load = f"load (1 min) {_num(_head(r.load_before))} -> {_num(_head(r.load_after))}"
        print(f"\n{r.name}: {r.outcome} ({r.seconds:.0f} s, {load})")
        if r.ok:
            print(f"  {json.dumps(r.summary, sort_keys=True)}")
        for note in r.notes:
            print(f"  note: {note}")
    print(f"\nPlots: {', '.join(plots['written']) or 'none'}")
    for name, why in plots["skipped"].items():
        print(f"  skipped {name}: {why}")
    print(f"Results: {directory}")
    sys.stdout.flush()
    # The last line of stdout is machine-readable, as with `python -m benchmarks`.
    if suite:
        (only,) = results
        print(json.dumps(only.summary if only.ok else {"error": only.error}, sort_keys=True))
    else:
        print(
            json.dumps({r.name: r.summary if r.ok else {"error": r.error} for r in results}, sort_keys=True)
        )
    return 0 if all(r.passed for r in results) else 1


def _comment(text: str) -> str:
    return "\n".join(f"# {line}".rstrip() for line in text.splitlines())


def tune(quick: bool, target_ms: float, out: Path = DEFAULT_OUT, plan: Plan | None = None) -> int:
    """Sweep the settings, write the results, print TOML (figures as comments); 1 if nothing met
    the target or the sweep failed."""
    from benchmarks import tune as sweep
    from benchmarks.tune_advice import advise

    advise([], target_ms)  # a bad target fails here, before minutes of sweeping
    directory = run_directory(out, suffix="-tune")
    facts = machine_facts()
    result = measure("tune", lambda: sweep.run(quick, target_ms, plan))
    write_run([result], directory, _header(quick, facts, target_ms=target_ms))
    print(_comment("\n".join(describe(facts))))
    if not result.ok or result.summary is None:
        print(_comment(f"the sweep failed: {result.error}\nresults: {directory}"))
        return 1
    figures = result.summary
    print(_comment(_points_table(figures["points"])))
    print(
        _comment(
            f"{figures['plan']} sweep, {figures['rounds']} round(s) of {figures['window_s']:g} s a point, "
            f"{figures['sweep_s']:g} s; load (1 min) {figures['load_avg_1m']['start']} -> "
            f"{figures['load_avg_1m']['end']}\nresults and plots: {directory}"
        )
    )
    (directory / "tune.toml").write_text(figures["toml"])
    print(figures["toml"], end="")
    return 0 if figures["met"] else 1


def _points_table(points: list[dict[str, Any]]) -> str:
    lines = [
        f"{'setting':<22} {'p50 ms':>7} {'p95 ms':>7} {'fps':>5} {'n':>5}/{'exp':<5} {'enc p95':>7}  verdict"
    ]
    for p in points:
        verdict = "meets" if p["meets"] else p["why_not"]
        if not p["served"]:
            verdict += " (not serve's bitrate ceiling: compare only)"
        lines.append(
            f"{p['label']:<22} {_num(p['p50_ms']):>7} {_num(p['p95_ms']):>7} {p['fps_measured']:>5g} "
            f"{p['samples']:>5}/{p['frames_expected']:<5} {_num(p['encode_p95_ms']):>7}  {verdict}"
        )
    return "\n".join(lines)


def _head(values: list[float]) -> float | None:
    return values[0] if values else None


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
