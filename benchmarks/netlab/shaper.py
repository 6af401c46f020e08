"""When each packet of one impaired direction leaves, or that it is lost (pure).

The forwarder (:mod:`benchmarks.netlab.forwarder`) asks a :class:`Shaper` about every packet
it reads; the answer depends only on the :class:`~benchmarks.netlab.impair.Link`, the seeded
random draws and the times passed in, so it is tested synchronously.
"""

from __future__ import annotations

import math
import random

from benchmarks.netlab.impair import Link


class Shaper:
    """When each packet of one direction leaves, or that it is lost: pure (no I/O, no clock).

    ``admit(size, now)`` returns the packet's release time on the same clock as ``now``, or
    None when the packet is dropped. ``link`` may be replaced at any time; it applies from the
    next packet.
    """

    def __init__(self, rng: random.Random, reorder: bool = False, link: Link | None = None) -> None:
        self.link = link or Link()
        self._rng = rng
        self._reorder = reorder
        self._last_release = -math.inf
        self._link_free = -math.inf

    def admit(self, size: int, now: float) -> float | None:
        link = self.link
        # Both draws always happen, so a profile switch does not shift the loss pattern.
        lost = self._rng.random() < link.loss
        jitter = self._rng.uniform(-link.jitter_ms, link.jitter_ms)
        if lost:
            return None
        release = now + max(0.0, link.delay_ms + jitter) / 1000
        if link.rate_kbps:
            start = max(release, self._link_free)
            if start - release > link.queue_ms / 1000:
                return None  # tail drop: the bottleneck's queue is full
            self._link_free = start + size * 8 / (link.rate_kbps * 1000)
            release = self._link_free
        if not self._reorder:
            release = max(release, self._last_release)
            self._last_release = release
        return release
