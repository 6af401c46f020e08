"""Expected-wait estimation from measured handle times. Pure: no I/O, no clock.

The estimator, documented in docs/protocol.md ("Expected wait"):

- Each queue keeps an exponentially weighted moving average (EWMA) of the handle
  times of its finished calls (``alpha`` weights the newest call). The average
  starts at a prior (``prior_s``), so one unusual first call cannot swing it to
  an extreme.
- A queue is served by ``slots`` agent seats (the capacity of every logged-in,
  available agent eligible for it). Treating handle times as exponential (the
  usual M/M/c reading of a contact centre), seats free up at a rate of
  ``slots / mean`` calls per second, independent of how long current calls have
  run. A customer with ``ahead`` customers before them and ``free`` seats free now
  needs ``ahead - free + 1`` departures, so waits ``(ahead - free + 1) * mean / slots``
  on average, and nothing when ``ahead < free``.
- With no seat at all the wait is unknown (``None``): nobody is there to estimate from.
"""

from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass
class HandleTimes:
    """Moving averages of call handle times, per queue and per agent."""

    prior_s: float = 180.0
    alpha: float = 0.2
    _by_key: dict[Hashable, float] = field(default_factory=dict)

    def record(self, key: Hashable, seconds: float) -> None:
        """Fold one finished call's handle time into ``key``'s average."""
        seconds = max(0.0, seconds)
        old = self._by_key.get(key, self.prior_s)
        self._by_key[key] = old + self.alpha * (seconds - old)

    def forget(self, key: Hashable) -> None:
        self._by_key.pop(key, None)

    def mean(self, key: Hashable) -> float:
        """The average handle time for ``key``, or the prior when none was measured."""
        return self._by_key.get(key, self.prior_s)


def expected_wait(ahead: int, free: int, slots: int, mean_handle_s: float) -> float | None:
    """Seconds until a customer with ``ahead`` customers before them is offered to an agent."""
    if slots <= 0:
        return None
    if ahead < free:
        return 0.0
    return (ahead - free + 1) * mean_handle_s / slots
