"""Sample counts every suite reports: what a run set out to measure, what it measured.

A suite's summary carries ``samples_expected`` (the samples its plan should give: frames sent,
mouth changes made, decisions asked for) and ``samples_measured`` (those that gave a figure).
Samples that fail (an unreadable stamp, a composite made on the fallback clock, a mouth change
never detected) are counted in the difference, never silently dropped; a run that lost more
than :data:`LOST_LIMIT_PCT` of them is a failed run (its figures describe a different set).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LOST_LIMIT_PCT = 1.0


def lost_pct(summary: Mapping[str, Any]) -> float | None:
    """Percent of the expected samples not measured; ``None`` when the suite does not count them."""
    expected, measured = summary.get("samples_expected"), summary.get("samples_measured")
    if not isinstance(expected, int) or not isinstance(measured, int):
        return None
    if expected <= 0:
        return 100.0
    return round(100 * max(0, expected - measured) / expected, 2)


BREAKDOWNS = ("samples_by_path", "samples_by_part")  # {name: {"expected": n, "measured": n}}


def loss_problem(summary: Mapping[str, Any]) -> str | None:
    """Why the run fails on its sample count, or ``None`` when it does not. Each part of a
    breakdown is judged too: 3 mouth changes missed of 30 are not hidden by 3,000 render timings."""
    counted = [("the samples", summary)]
    for key in BREAKDOWNS:
        parts = summary.get(key)
        if isinstance(parts, Mapping):
            counted += [
                (
                    f"{name}'s samples",
                    {"samples_expected": c.get("expected"), "samples_measured": c.get("measured")},
                )
                for name, c in parts.items()
                if isinstance(c, Mapping)
            ]
    problems = []
    for what, counts in counted:
        lost = lost_pct(counts)
        if lost is not None and lost > LOST_LIMIT_PCT:
            measured, expected = counts["samples_measured"], counts["samples_expected"]
            problems.append(f"lost {lost:g} % of {what} ({measured} of {expected} measured)")
    if not problems:
        return None
    return "; ".join(problems) + f" (at most {LOST_LIMIT_PCT:g} % may be lost)"
