"""The One Euro filter (Casiez, Roussel, Vogel, CHI 2012): smooth when still, quick when moving.

Pure: time is passed in with each sample. A low-pass filter whose cutoff rises
with the signal's speed, so a still face does not jitter and a turning head does
not lag.
"""

from __future__ import annotations

import math


class OneEuroFilter:
    """Filter one scalar signal.

    Args:
        min_cutoff: cutoff (Hz) when the signal is still; lower is smoother.
        beta: how fast the cutoff rises with speed; higher lags less.
        d_cutoff: cutoff (Hz) for the speed estimate.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0) -> None:
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next sample passes through unchanged."""
        self._x: float | None = None
        self._dx = 0.0
        self._t = 0.0

    @staticmethod
    def _alpha(cutoff: float, dt: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: float, t: float) -> float:
        """The filtered value of sample ``x`` taken at time ``t`` (seconds)."""
        if self._x is None:
            self._x, self._t = x, t
            return x
        dt = t - self._t
        if dt <= 0:
            return self._x  # a repeated or out-of-order sample changes nothing
        dx = (x - self._x) / dt
        self._dx += self._alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * abs(self._dx)
        self._x += self._alpha(cutoff, dt) * (x - self._x)
        self._t = t
        return self._x
