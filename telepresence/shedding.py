"""Shedding: what gives, one step at a time, when running calls push the machine too far.

When running calls themselves push the machine past ``cpu_shed_pct``, shedding goes one
step at a time, in this order, and back the other way once the machine is under
``min(cpu_budget_pct, cpu_shed_pct) - RESTORE_MARGIN_PCT``:

1. the screen tile's frame rate: 15 fps, then 5 fps;
2. then the screen tile's resolution: half;

never the agent's face (camera or avatar) and never audio. See :data:`SHED_STEPS`. Each
step reaches the agents of running calls as a ``sender_limits`` message
(:func:`sender_limits`): their browser caps its screen sender, so the server decodes and
composes fewer screen pixels; and every room enforces it too (media.screen_limits), for
a screen source that does not listen.

Pure: levels in, levels out (:func:`next_shed_level`); :class:`telepresence.admission.Admission`
owns the level and the samples that move it.
"""

from __future__ import annotations

from dataclasses import dataclass

RESTORE_MARGIN_PCT = 5.0  # shed quality comes back below min(budget, shed) minus this
SHED_HOLD_S = 5.0  # at most one shedding step (either way) per this many seconds


@dataclass(frozen=True)
class ShedStep:
    """One step of shedding: what the screen tile is held to. The agent's face and audio never shed."""

    name: str
    screen_fps: float | None  # the screen tile's frame rate cap; None: as the sender sends it
    screen_scale: float  # the screen tile's resolution, as a share of what is sent


SHED_STEPS: tuple[ShedStep, ...] = (
    ShedStep("full", None, 1.0),
    ShedStep("screen_fps_15", 15.0, 1.0),
    ShedStep("screen_fps_5", 5.0, 1.0),
    ShedStep("screen_half_resolution", 5.0, 0.5),
)


def sender_limits(step: ShedStep, call_id: str) -> dict[str, object]:
    """The ``sender_limits`` message (docs/protocol.md) that asks an agent's browser to hold its
    screen sender to ``step`` (``max_fps`` null: no cap)."""
    return {
        "type": "sender_limits",
        "call_id": call_id,
        "step": step.name,
        "screen": {"max_fps": step.screen_fps, "scale_down_by": round(1 / step.screen_scale, 2)},
    }


def next_shed_level(
    level: int,
    *,
    calls: int,
    busy_pct: float | None,
    shed_pct: float,
    budget_pct: float,
    now: float,
    changed_at: float | None,
    hold_s: float = SHED_HOLD_S,
) -> int:
    """The shedding level (an index into :data:`SHED_STEPS`) after one busy sample.

    One step deeper while the machine is over ``shed_pct``; one step back while it is under
    ``min(budget_pct, shed_pct) - RESTORE_MARGIN_PCT``; between the two, where it is; at most
    one step per ``hold_s`` so each step's effect is seen before the next. Never deeper while
    no call runs: then the machine is busy with something else, and shedding saves nothing.
    """
    if busy_pct is None or (changed_at is not None and now - changed_at < hold_s):
        return level
    if calls > 0 and shed_pct < 100.0 and busy_pct > shed_pct and level < len(SHED_STEPS) - 1:
        return level + 1
    if busy_pct < min(budget_pct, shed_pct) - RESTORE_MARGIN_PCT and level > 0:
        return level - 1
    return level
