"""How true and how costly the impairment is: ``python -m benchmarks.netlab.measure [--quick]``.

For each profile a UDP ping (200-byte datagrams every 20 ms, one reply each) runs from the
customer to the server through the customer's impaired access link, and is compared with the
profile's round trip (RTT, jitter as the mean |difference| of consecutive RTTs, loss). Then
the forwarder's cost: RTT added on ``clean`` against the plain link, and its CPU time a
packet under ~1,000 packets a second each way. Prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from benchmarks.netlab.impair import PROFILES
from benchmarks.netlab.namespaces import Lab
from benchmarks.netlab.probe import ProbeServer


def configured(name: str) -> dict[str, float]:
    """A profile's round trip as configured (both directions summed)."""
    p = PROFILES[name]
    return {
        "rtt_ms": p.up.delay_ms + p.down.delay_ms,
        "jitter_ms": p.up.jitter_ms + p.down.jitter_ms,
        "loss": 1 - (1 - p.up.loss) * (1 - p.down.loss),
    }


def measure(count: int = 500, interval_ms: float = 20.0, seed: int = 1) -> dict[str, Any]:
    results: dict[str, Any] = {"count": count, "interval_ms": interval_ms, "profiles": {}}
    with Lab() as lab, ProbeServer(lab) as server:
        results["direct"] = server.ping_summary("customer", 200, 5)
        impairment = lab.impair("customer", "clean", seed=seed)
        for name in PROFILES:
            impairment.set(name)
            results["profiles"][name] = {
                "configured": configured(name),
                "measured": server.ping_summary("customer", count, interval_ms),
            }
        impairment.set("clean")
        results["clean_through_tun"] = server.ping_summary("customer", 200, 5)
        before = impairment.stats()
        started = time.monotonic()
        load = server.ping_summary("customer", 2000, 1.0, size=1200)
        after = impairment.stats()
        packets = sum(after[d]["received"] - before[d]["received"] for d in ("up", "down"))
        results["load"] = {
            "packets_per_s": packets / (time.monotonic() - started),
            "loss": load["loss"],
            "rtt_p50_ms": load["rtt_p50_ms"],
            "cpu_us_per_packet": (after["cpu_s"] - before["cpu_s"]) / max(packets, 1) * 1e6,
        }
        results["added_rtt_p50_ms"] = (
            results["clean_through_tun"]["rtt_p50_ms"] - results["direct"]["rtt_p50_ms"]
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="150 pings a profile instead of 500")
    args = parser.parse_args(argv)
    print(json.dumps(measure(count=150 if args.quick else 500), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
