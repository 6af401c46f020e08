"""The avatar's rig: a small set of numbers that says how the character looks right now.

Pure: no I/O, no clock, no randomness of its own. Time comes in as an argument
(seconds, any origin), and the idle motion is a function of time and a seed, so
the same call always gives the same pose.

Conventions, all in the picture's frame as the customer sees it:

- ``yaw`` > 0 turns the face towards the picture's right (the nose moves right);
  ``pitch`` > 0 tilts the face down (the nose moves down); ``roll`` > 0 tilts the
  head clockwise. Degrees.
- ``eye_l`` / ``eye_r``: openness of the eye on the picture's left / right,
  0 (shut) to 1 (open), up to 1.3 (wide, surprise).
- ``brows``: -1 (frown) .. 0 .. 1 (raised).
- ``mouth_open``: 0 (closed) .. 1 (wide open); ``mouth_wide``: -1 (rounded, "oo")
  .. 1 (stretched, "ee"); ``smile``: -1 (frown) .. 1 (broad smile).
- ``gaze_x`` / ``gaze_y``: where the irises point, -1 .. 1 (right and down positive).
- ``hand``: 0 (no hand) .. 1 (raised, waving); ``hand_tilt``: -1 .. 1, the wave's swing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

LIMITS: dict[str, tuple[float, float]] = {
    "yaw": (-35.0, 35.0),
    "pitch": (-25.0, 25.0),
    "roll": (-30.0, 30.0),
    "eye_l": (0.0, 1.3),
    "eye_r": (0.0, 1.3),
    "brows": (-1.0, 1.0),
    "mouth_open": (0.0, 1.0),
    "mouth_wide": (-1.0, 1.0),
    "smile": (-1.0, 1.0),
    "gaze_x": (-1.0, 1.0),
    "gaze_y": (-1.0, 1.0),
    "hand": (0.0, 1.0),
    "hand_tilt": (-1.0, 1.0),
}

BLINK_SECONDS = 0.16  # a blink, shut and open again
BLINK_CELL_SECONDS = 3.7  # on average one blink per cell, at a seeded place in it


@dataclass(frozen=True, slots=True)
class Rig:
    """One pose of the character. Build with keywords; :meth:`clamped` keeps fields in range."""

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    eye_l: float = 1.0
    eye_r: float = 1.0
    brows: float = 0.0
    mouth_open: float = 0.0
    mouth_wide: float = 0.0
    smile: float = 0.0
    gaze_x: float = 0.0
    gaze_y: float = 0.0
    hand: float = 0.0
    hand_tilt: float = 0.0

    def clamped(self) -> Rig:
        """This pose with every field inside :data:`LIMITS` (NaN: neutral; infinities: the limit)."""
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if math.isnan(value):
                value = getattr(NEUTRAL, f.name)
            lo, hi = LIMITS[f.name]
            values[f.name] = min(hi, max(lo, float(value)))
        return Rig(**values)

    def with_(self, **changes: float) -> Rig:
        """A copy with some fields changed (not clamped)."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


NEUTRAL = Rig()
FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Rig))


def lerp(a: Rig, b: Rig, t: float) -> Rig:
    """The pose a fraction ``t`` (clamped to 0..1) of the way from ``a`` to ``b``."""
    t = min(1.0, max(0.0, t))
    return Rig(*(x + (y - x) * t for x, y in zip(_values(a), _values(b), strict=True)))


def smoothstep(t: float) -> float:
    """Ease in and out: 0 -> 0, 1 -> 1, zero slope at both ends."""
    t = min(1.0, max(0.0, t))
    return t * t * (3 - 2 * t)


def approach(current: Rig, target: Rig, dt: float, half_life: float) -> Rig:
    """Move ``current`` towards ``target`` for ``dt`` seconds, halving the gap every ``half_life``.

    Frame-rate independent exponential easing: two steps of ``dt`` land where one
    step of ``2 * dt`` does. ``dt <= 0`` changes nothing; ``half_life <= 0`` snaps.
    """
    if dt <= 0:
        return current
    if half_life <= 0:
        return target
    return lerp(current, target, 1 - 0.5 ** (dt / half_life))


def add(base: Rig, offset: Rig, weight: float = 1.0) -> Rig:
    """``base`` plus ``weight`` times ``offset``'s difference from neutral (gestures, expressions)."""
    return Rig(
        *(
            b + weight * (o - n)
            for b, o, n in zip(_values(base), _values(offset), _values(NEUTRAL), strict=True)
        )
    )


def _values(rig: Rig) -> tuple[float, ...]:
    return tuple(getattr(rig, name) for name in FIELDS)


def _hash01(seed: int, index: int, salt: int = 0) -> float:
    """A deterministic number in [0, 1) from integers (splitmix64), so idle motion needs no RNG state."""
    x = (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + salt * 0x94D049BB133111EB) & (2**64 - 1)
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & (2**64 - 1)
    x ^= x >> 31
    return x / 2**64


def blink(t: float, seed: int = 0) -> float:
    """How shut the eyes are at time ``t`` from idle blinking: 0 (open) .. 1 (shut).

    Time is cut into cells of :data:`BLINK_CELL_SECONDS`; each cell holds one blink at
    a seeded offset (and now and then a quick second one), so blinks come irregularly,
    2-6 s apart, and the answer depends only on ``t`` and ``seed``.
    """
    cell = math.floor(t / BLINK_CELL_SECONDS)
    closed = 0.0
    for c in (cell - 1, cell):
        start = c * BLINK_CELL_SECONDS + 0.3 + _hash01(seed, c) * (BLINK_CELL_SECONDS - 0.6)
        starts = [start]
        if _hash01(seed, c, 1) < 0.2:
            starts.append(start + BLINK_SECONDS + 0.12)  # a double blink
        for s in starts:
            phase = (t - s) / BLINK_SECONDS
            if 0 <= phase <= 1:
                # Lids close faster than they open.
                closed = max(closed, phase / 0.4 if phase < 0.4 else (1 - phase) / 0.6)
    return min(1.0, closed)


def idle(t: float, seed: int = 0, *, blinking: bool = True) -> Rig:
    """The neutral idle pose at time ``t``: slow breathing sway, a hint of a smile, blinks."""
    phase = _hash01(seed, 0, 2) * 2 * math.pi
    shut = blink(t, seed) if blinking else 0.0
    return Rig(
        yaw=2.5 * math.sin(0.23 * t + phase) + 1.0 * math.sin(0.61 * t + 2 * phase),
        pitch=1.5 * math.sin(0.31 * t + 3 * phase),
        roll=1.2 * math.sin(0.17 * t + phase / 2),
        eye_l=1.0 - shut,
        eye_r=1.0 - shut,
        smile=0.12,
        gaze_x=0.08 * math.sin(0.13 * t + phase),
        gaze_y=0.05 * math.sin(0.19 * t + 2 * phase),
    )


# -- expressions and gestures ---------------------------------------------------

EXPRESSIONS: dict[str, Rig] = {
    "neutral": NEUTRAL,
    "smile": Rig(smile=0.85, eye_l=0.85, eye_r=0.85, brows=0.15, mouth_wide=0.3),
    "laugh": Rig(smile=1.0, mouth_open=0.45, eye_l=0.55, eye_r=0.55, brows=0.3, mouth_wide=0.5),
    "surprise": Rig(brows=0.95, eye_l=1.3, eye_r=1.3, mouth_open=0.4, mouth_wide=-0.6),
    "sad": Rig(smile=-0.6, brows=-0.35, eye_l=0.8, eye_r=0.8, pitch=4.0),
    "thinking": Rig(gaze_x=-0.55, gaze_y=-0.5, brows=0.35, roll=-5.0, mouth_wide=-0.3),
    "concerned": Rig(brows=-0.6, smile=-0.2, eye_l=0.95, eye_r=0.95),
}
"""Named expressions: target poses, blended in and out over the idle (or face-driven) pose."""

GESTURES: dict[str, float] = {"nod": 1.2, "shake": 1.3, "wave": 2.0}
"""Named gestures and how long each lasts, in seconds."""

LOOKS: dict[str, Rig] = {
    "camera": NEUTRAL,
    # In the avatar layouts the shared screen is up and to the avatar's right of the picture.
    "screen": Rig(yaw=-9.0, pitch=-4.0, gaze_x=-0.6, gaze_y=-0.35),
}
"""Where the avatar can look: offsets from its current pose."""


def gesture(name: str, elapsed: float) -> Rig:
    """The offset (from neutral) gesture ``name`` adds ``elapsed`` seconds after it started.

    Every gesture starts and ends at neutral (no jump at either end): its amplitude is
    shaped by a sine window over :data:`GESTURES` ``[name]`` seconds.

    Raises:
        KeyError: an unknown gesture.
    """
    duration = GESTURES[name]
    if not 0 <= elapsed <= duration:
        return NEUTRAL
    u = elapsed / duration
    window = math.sin(math.pi * u)
    if name == "nod":
        return Rig(pitch=11.0 * window * math.sin(2 * math.pi * 2 * u))
    if name == "shake":
        return Rig(yaw=14.0 * window * math.sin(2 * math.pi * 2.5 * u))
    # wave: the hand comes up, swings three times, goes down; a small smile with it.
    up = smoothstep(min(1.0, 4 * u)) * smoothstep(min(1.0, 4 * (1 - u)))
    return Rig(hand=up, hand_tilt=math.sin(2 * math.pi * 3 * u) * up, smile=0.3 * up)
