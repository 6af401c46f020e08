"""Entry point: ``python -m benchmarks SUITE [--quick]``."""

import argparse
import importlib
import json
import sys

from benchmarks import SUITES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("suite", choices=sorted(SUITES), help="which suite to run")
    parser.add_argument("--quick", action="store_true", help="fewer samples, for a smoke run")
    args = parser.parse_args(argv)
    module = importlib.import_module(SUITES[args.suite])
    summary = module.run(quick=args.quick)
    sys.stdout.flush()
    # The last line of stdout is the machine-readable summary.
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
