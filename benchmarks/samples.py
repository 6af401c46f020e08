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


def loss_problem(summary: Mapping[str, Any]) -> str | None:
    """Why the run fails on its sample count, or ``None`` when it does not."""
    lost = lost_pct(summary)
    if lost is None or lost <= LOST_LIMIT_PCT:
        return None
    return (
        f"lost {lost:g} % of the samples ({summary['samples_measured']} of {summary['samples_expected']} "
        f"measured; at most {LOST_LIMIT_PCT:g} % may be lost)"
    )
