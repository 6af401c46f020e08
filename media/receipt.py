"""A latency receipt: per-frame timings of each stage, summarised as p50/p95."""

from __future__ import annotations

from collections import deque

import numpy as np

DEFAULT_WINDOW = 9000  # five minutes at 30 fps; older samples fall out


class LatencyReceipt:
    """Collects per-frame durations (milliseconds) by stage name: ``"compose"``, ``"slot_wait"``...

    Cheap enough for the frame path: one ``deque.append`` per sample. The call layer
    adds its own stages (receive, decode, encode, send, browser figures) to the same
    receipt and publishes :meth:`summary` in its log and metrics.
    """

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self._window = window
        self._samples: dict[str, deque[float]] = {}
        self.counts: dict[str, int] = {}

    def record(self, stage: str, ms: float) -> None:
        """Add one sample for ``stage``."""
        samples = self._samples.get(stage)
        if samples is None:
            samples = self._samples[stage] = deque(maxlen=self._window)
        samples.append(ms)
        self.counts[stage] = self.counts.get(stage, 0) + 1

    def samples(self, stage: str) -> list[float]:
        """The retained samples of ``stage``, oldest first."""
        return list(self._samples.get(stage, ()))

    def summary(self) -> dict[str, dict[str, float]]:
        """``{stage: {"p50": ms, "p95": ms, "count": n}}`` over the retained window."""
        out = {}
        # A copy: the encoder thread may add a stage while the event loop reads.
        for stage, samples in list(self._samples.items()):
            if samples:
                values = np.fromiter(samples, float, len(samples))
                p50, p95 = np.percentile(values, [50, 95])
                out[stage] = {
                    "p50": round(float(p50), 3),
                    "p95": round(float(p95), 3),
                    "count": self.counts.get(stage, len(samples)),
                }
        return out
