"""Entry point: ``python -m benchmarks SUITE [--quick] [--camera SOURCE]``."""

import argparse
import importlib
import inspect
import json
import sys

from benchmarks import SUITES
from benchmarks.samples import loss_problem
from media.camera import CameraUnavailable

# Why a suite with an agent's camera does not take --camera.
NO_CAMERA = {
    "browser": "its agent is headless Chromium, whose camera is Chromium's fake device (a .y4m file "
    "at most, --use-file-for-fake-video-capture); a V4L2 device there is not wired yet",
    "capacity": "its agents send one pre-encoded loop to keep many calls cheap",
    "avatar": "its operator's face is a real face picture with a moving mouth, which the suite detects",
}
SAMPLES_KEY = "samples"  # raw per-path samples (benchmarks.results): for plots, not for the last line


def _takes(run, name: str) -> bool:
    return name in inspect.signature(run).parameters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("suite", choices=sorted(SUITES), help="which suite to run")
    parser.add_argument("--quick", action="store_true", help="fewer samples, for a smoke run")
    parser.add_argument(
        "--camera",
        metavar="SOURCE",
        help="the agent's camera: a V4L2 device (/dev/video0) or any video file PyAV opens "
        "(suites that have an agent's camera: latency)",
    )
    args = parser.parse_args(argv)
    module = importlib.import_module(SUITES[args.suite])
    kwargs = {}
    if args.camera is not None:
        if not _takes(module.run, "camera"):
            why = NO_CAMERA.get(args.suite, "it has no agent's camera")
            parser.error(f"the {args.suite} suite takes no --camera: {why} (suites that do: latency)")
        kwargs["camera"] = args.camera
    try:
        summary = module.run(quick=args.quick, **kwargs)
    except CameraUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = {key: value for key, value in summary.items() if key != SAMPLES_KEY}
    sys.stdout.flush()
    # The last line of stdout is the machine-readable summary.
    print(json.dumps(summary, sort_keys=True))
    problem = loss_problem(summary)
    if problem is not None:
        print(f"{args.suite}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
