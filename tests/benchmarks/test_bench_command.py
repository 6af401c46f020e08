"""``telepresence bench``: real suite runs written to disk (JSON, Markdown, PNGs), a failing suite
recorded while the others still run, and ``bench tune``'s TOML read by the real config loader.

No timing is asserted: the figures are whatever this (shared) machine measured."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from benchmarks import bench, tune
from benchmarks.machine import machine_facts
from benchmarks.results import SuiteResult, split_samples
from benchmarks.tune_advice import SERVED_KBPS, Figures, Point, advise
from telepresence import cli
from telepresence.config import Settings

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _telepresence(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "telepresence", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _run_dir(out: Path) -> Path:
    (directory,) = out.iterdir()  # one run, one timestamped directory
    return directory


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    pixels = matplotlib.image.imread(path)  # decodes the whole image: a truncated file fails here
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100, pixels.shape
    assert pixels.std() > 0, f"{path.name} is blank"


def test_bench_compose_quick_writes_the_summary_the_table_and_a_plot(tmp_path: Path):
    done = _telepresence("bench", "compose", "--quick", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    printed = json.loads(lines[-1])  # the last line is the suite's summary, as `python -m benchmarks` prints
    assert "compose_p95_ms" in printed and printed["compose_p95_ms"] > 0
    assert any(line.strip().startswith("CPU:") and "cores" in line for line in lines), done.stdout
    assert any("aiortc" in line and "av " in line and "numpy" in line for line in lines), done.stdout

    directory = _run_dir(tmp_path)
    document = json.loads((directory / "summary.json").read_text())
    assert document["quick"] is True
    assert document["machine"]["cores"] >= 1 and document["machine"]["versions"]["aiortc"]
    entry = document["suites"]["compose"]
    assert entry["ok"] is True and entry["summary"] == printed
    assert len(entry["load_before"]) == 3  # the machine is shared: the load is recorded with the figures

    table = (directory / "summary.md").read_text()
    assert "## compose" in table and "| compose | ok |" in table
    for key, value in printed.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            assert f"| {key} | {value:g} |" in table, key
    # compose hands over no samples or stages: the plain bar plot, and the reasons for the others.
    assert document["plots"]["written"] == ["figures_compose.png"]
    assert "latency_cdf_compose.png" in document["plots"]["skipped"]
    _assert_png(directory / "figures_compose.png")
    assert "![figures_compose.png](figures_compose.png)" in table


def test_a_failing_suite_is_recorded_and_the_next_one_still_runs(tmp_path: Path, capsys):
    suites = {"missing": "benchmarks.no_such_suite", "compose": "benchmarks.compose"}
    code = bench.bench(None, quick=True, out=tmp_path, suites=suites)
    assert code == 1
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "ModuleNotFoundError" in last["missing"]["error"]
    assert last["compose"]["compose_p95_ms"] > 0

    directory = _run_dir(tmp_path)
    document = json.loads((directory / "summary.json").read_text())
    missing = document["suites"]["missing"]
    assert missing["ok"] is False and "benchmarks.no_such_suite" in missing["error"]
    assert "Traceback" in missing["traceback"]
    assert document["suites"]["compose"]["ok"] is True
    table = (directory / "summary.md").read_text()
    assert "| missing | **failed: ModuleNotFoundError" in table
    assert "| compose | ok |" in table
    assert document["plots"]["skipped"]["missing plots"] == "the suite failed"


# Two short points (the codecs at 360p, serve's bitrate ceiling): the sweep's method in seconds.
# `--quick` is four points.
TINY_TUNE = tune.Plan(
    sizes=("360p",),
    fps=(30,),
    codecs=("VP8", "H264"),
    kbps=(SERVED_KBPS,),
    warmup_s=1.0,
    window_s=1.5,
    rounds=1,
    label="tiny",
)


def test_tune_prints_toml_the_config_loader_reads_and_plots_its_samples(tmp_path: Path, capsys):
    # A target any point meets in latency; on a loaded machine a point can still miss on frame
    # rate or unreadable stamps, and then the suggestion comes commented out: both are checked.
    out = tmp_path / "results"
    code = bench.tune(False, 100_000, out, plan=TINY_TUNE)
    printed = capsys.readouterr().out
    directory = _run_dir(out)
    summary = json.loads((directory / "summary.json").read_text())["suites"]["tune"]["summary"]
    assert code == (0 if summary["met"] else 1)
    suggested = summary["chosen"] or min(summary["points"], key=lambda p: p["p95_ms"])["label"]
    point = next(p for p in summary["points"] if p["label"] == suggested)
    wanted = (point["size"], float(point["fps"]), point["codec"])

    config = tmp_path / "tuned.toml"
    config.write_text(printed)  # everything tune prints is TOML: figures as comments
    settings = _served_with(config)
    if summary["met"]:
        assert (settings.video_size, settings.video_fps, settings.video_codec) == wanted
    else:
        assert settings == Settings.load(None, env={})  # nothing set: the defaults
        # The suggestion, uncommented, is the lowest p95 measured.
        config.write_text(re.sub(r"^# (video_\w+ = )", r"\1", printed, flags=re.MULTILINE))
        settings = _served_with(config)
        assert (settings.video_size, settings.video_fps, settings.video_codec) == wanted

    # Each point measured with stamped frames, and with the codec it asked for.
    assert [p["label"] for p in summary["points"]] == ["360p30 VP8 3000k", "360p30 H264 3000k"]
    assert all(p["served"] for p in summary["points"]) and SERVED_KBPS == 3000
    for row in summary["points"]:
        assert row["samples"] > 0 and row["codecs"] == [row["codec"]], row
    assert (directory / "tune.toml").read_text() == summary["toml"]
    table = (directory / "summary.md").read_text()
    assert "### points" in table and "\n| 360p30 H264 3000k | 360p | 30 | H264 | 3000 |" in table
    assert "### toml" in table and summary["toml"].strip() in table
    samples = json.loads((directory / "samples.json").read_text())["tune"]
    assert {p["label"] for p in summary["points"]} == set(samples)
    for name in ("latency_cdf_tune.png", "stages_tune.png"):
        _assert_png(directory / name)


def test_tune_refuses_a_target_of_zero_before_sweeping(capsys):
    assert cli.main(["bench", "tune", "--target-ms", "0"]) == 2
    assert "above 0 ms" in capsys.readouterr().err


def test_a_results_place_that_cannot_be_written_is_said_before_any_suite_runs(tmp_path: Path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert cli.main(["bench", "compose", "--quick", "--out", str(blocker)]) == 2
    captured = capsys.readouterr()
    assert f"cannot write results under {blocker}" in captured.err
    assert "[bench] compose" not in captured.err  # refused before the suite started


def _served_with(config: Path) -> Settings:
    """The settings `telepresence --config FILE serve` (the command the README gives) runs with."""
    args = cli.build_parser().parse_args(["--config", str(config), "serve"])
    assert args.handler is cli.serve
    return Settings.load(Path(args.config), env={})


def _figures(
    size: str, codec: str, p95: float, fps: float = 30.0, samples: int = 100, kbps: int = SERVED_KBPS
) -> Figures:
    return Figures(
        Point(size, 30, codec, kbps),
        p50_ms=p95 / 2,
        p95_ms=p95,
        fps_measured=fps,
        samples=samples,
        frames=100,
        frames_expected=100,
        codecs=[codec],
    )


def test_tune_chooses_the_best_picture_that_meets_the_target(tmp_path: Path):
    figures = [
        _figures("360p", "H264", 20),
        _figures("720p", "VP8", 45),
        _figures("720p", "H264", 30),
        _figures("1080p", "H264", 80),  # too slow
        _figures("1080p", "VP8", 30, fps=20),  # fast, but dropped a third of the frames
        _figures("540p", "H264", 10, samples=50),  # half its stamps unreadable: not judged
    ]
    summary = advise(figures, target_ms=50)
    assert summary["chosen"] == "720p30 H264 3000k"  # 720p, the lower p95 of the two codecs
    why = {p["label"]: p["why_not"] for p in summary["points"]}
    assert why["1080p30 H264 3000k"] == "p95 80 ms > 50 ms"
    assert why["1080p30 VP8 3000k"] == "20 fps of 30"
    assert why["540p30 H264 3000k"].startswith("only 50 of 100 frames")
    config = tmp_path / "chosen.toml"
    config.write_text(summary["toml"])
    settings = _served_with(config)
    assert (settings.video_size, settings.video_fps, settings.video_codec) == ("720p", 30.0, "H264")


def test_when_nothing_meets_the_target_the_snippet_suggests_but_sets_nothing(tmp_path: Path):
    summary = advise([_figures("720p", "VP8", 90), _figures("360p", "H264", 70)], target_ms=50)
    assert summary["met"] is False and summary["chosen"] is None
    assert "NO setting met the target" in summary["toml"] and '# video_size = "360p"' in summary["toml"]
    config = tmp_path / "unmet.toml"
    config.write_text(summary["toml"])
    assert Settings.load(config, env={}) == Settings.load(None, env={})  # comments only: the defaults
    with pytest.raises(ValueError, match="above 0 ms"):
        advise([], target_ms=0)


def test_samples_leave_the_summary_and_bad_ones_are_dropped_with_a_note():
    summary = {"p50_ms": 12.0, "samples": {"direct": [1, 2.5, float("nan")], "server": "oops", 7: [3]}}
    rest, samples, notes = split_samples(summary)
    assert rest == {"p50_ms": 12.0}
    assert samples == {"direct": [1.0, 2.5], "7": [3.0]}
    assert len(notes) == 2 and any("'server'" in note for note in notes)
    assert split_samples({"p50_ms": 1.0}) == ({"p50_ms": 1.0}, {}, [])


@pytest.mark.slow
def test_a_tiny_capacity_ramp_draws_the_capacity_curve(tmp_path: Path):
    from benchmarks import capacity
    from tests.benchmarks.test_capacity_suite import TINY

    result = bench.measure("capacity", lambda: asyncio.run(capacity.measure(TINY)))
    assert result.ok, result.traceback
    plots = bench.write_run([result], tmp_path, {"created": "now", "machine": machine_facts()})
    directory = tmp_path
    assert "capacity_curve.png" in plots["written"], plots
    _assert_png(directory / "capacity_curve.png")
    assert "### steps_720p" in (directory / "summary.md").read_text()


def test_only_a_point_at_serves_bitrate_ceiling_is_suggested():
    # The bitrate has no setting: a lower ceiling that met the target describes a server the
    # TOML cannot make, so it is shown for comparison, never chosen nor offered as the fallback.
    lower = _figures("720p", "H264", 20, kbps=1500)
    served = _figures("720p", "H264", 60)
    summary = advise([lower, served], target_ms=50)
    assert summary["met"] is False and summary["chosen"] is None
    rows = {p["label"]: p for p in summary["points"]}
    assert rows["720p30 H264 1500k"]["meets"] and not rows["720p30 H264 1500k"]["served"]
    assert rows["720p30 H264 3000k"]["served"] and "60 ms" in summary["toml"]
    assert advise([lower], target_ms=50)["toml"].count("video_") == 0  # nothing at serve's ceiling
    assert advise([lower, _figures("360p", "VP8", 30)], target_ms=50)["chosen"] == "360p30 VP8 3000k"


def test_a_point_whose_round_failed_does_not_meet_the_target():
    failed = dataclasses.replace(_figures("720p", "H264", 20), errors=["TimeoutError()"])
    summary = advise([failed, _figures("360p", "VP8", 30)], target_ms=50)
    assert summary["chosen"] == "360p30 VP8 3000k"
    assert summary["points"][0]["why_not"] == "1 round(s) failed: TimeoutError()"


def test_without_matplotlib_the_figures_are_still_written_and_the_plots_say_why(tmp_path: Path, monkeypatch):
    # An install without the `bench` extra: importing matplotlib fails.
    monkeypatch.delitem(sys.modules, "benchmarks.plots", raising=False)
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = SuiteResult("compose", summary={"compose_p95_ms": 0.6})
    plots = bench.write_run([result], tmp_path, {"created": "now", "machine": machine_facts()})
    assert plots["written"] == [] and "telepresence[bench]" in plots["skipped"]["all plots"]
    assert json.loads((tmp_path / "summary.json").read_text())["suites"]["compose"]["ok"] is True
    assert "| compose_p95_ms | 0.6 |" in (tmp_path / "summary.md").read_text()


def test_a_camera_goes_only_to_a_suite_that_takes_one(tmp_path: Path, capsys):
    assert cli.main(["bench", "compose", "--camera", "/dev/video9", "--out", str(tmp_path)]) == 2
    assert "the compose suite takes no --camera" in capsys.readouterr().err
    assert cli.main(["bench", "tune", "--camera", "/dev/video9", "--out", str(tmp_path)]) == 2
    assert "synthetic camera" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # refused before a run directory was made


def test_a_run_that_lost_samples_keeps_its_figures_and_fails(tmp_path: Path):
    # The rule `python -m benchmarks` applies (benchmarks.samples): more than 1 % lost fails the run.
    result = SuiteResult.from_summary(
        "latency", {"samples_expected": 100, "samples_measured": 90, "p50_ms": 9.0}
    )
    assert result.ok and not result.passed and "lost 10 %" in result.outcome
    bench.write_run([result], tmp_path, {"created": "now", "machine": machine_facts()})
    entry = json.loads((tmp_path / "summary.json").read_text())["suites"]["latency"]
    assert entry["summary"]["p50_ms"] == 9.0 and "lost 10 %" in entry["lost_samples"]
    assert "| latency | **failed on its sample count" in (tmp_path / "summary.md").read_text()
