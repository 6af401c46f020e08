"""Benchmarks: `python -m benchmarks SUITE [--quick]`.

Each suite is a module here with a ``run(quick: bool) -> dict`` function. The
runner shows progress on stderr (suites use :func:`benchmarks.progress.progress`)
and prints the suite's summary as ONE JSON object on the last line of stdout, so
scripts and CI can read it with ``tail -n 1``.
"""

SUITES = {
    "matchmaker": "benchmarks.matchmaker",
    "compose": "benchmarks.compose",
    "latency": "benchmarks.latency",
    "avatar": "benchmarks.avatar",
    "browser": "benchmarks.browser",
    "capacity": "benchmarks.capacity",
    "network": "benchmarks.network",
    "fanout": "benchmarks.fanout",
}
