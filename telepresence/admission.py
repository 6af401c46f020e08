"""Admission control: a CPU budget per machine, and what gives when it is spent.

A call costs the machine CPU for as long as it runs. When the machine is as busy as its
budget allows, the server keeps the running calls at full quality and makes the next
customers wait: no new offer is made, waiting customers keep their places, and their
``queue_status`` says the centre is at capacity (``docs/protocol.md``). Offers resume in
queue order as soon as the budget has room for one more call.

The budget (``cpu_budget_pct``) is a share of ALL the machine's cores, measured from
``/proc/stat`` (the whole machine: the server, its media workers and anything else that
runs there), smoothed over a few seconds. One more call is expected to cost
``call_cpu_pct`` (% of ONE core) until calls have run long enough to learn the figure
(machine busy above the idle baseline, per settled live call). A call that started (or an
offer made) in the last few seconds is not in the smoothed figure yet: its cost is
reserved on top. A machine with no call at all always admits one: there is nothing to
protect, and a busy machine must still serve someone. ``cpu_budget_pct = 100`` turns
admission off.

Shedding, when running calls themselves push the machine past ``cpu_shed_pct``, is
:mod:`telepresence.shedding`; :class:`Admission` moves its level after every sample.

Pure decisions (:func:`busy_pct`, :func:`smooth`, :func:`seats`, :class:`CallCost`,
and the shedding steps) take numbers and return numbers, so they are tested without
timing; :class:`Admission` is the thin shell that reads ``/proc/stat`` on a task it owns.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from telepresence.metrics import Metrics
from telepresence.shedding import SHED_STEPS, ShedStep, next_shed_level

logger = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 1.0
SMOOTHING_S = 3.0  # time constant of the busy figure's moving average
SETTLE_S = 6.0  # a call younger than this is not yet (fully) in the smoothed busy figure
REOPEN_MARGIN_PCT = 5.0  # closed admission reopens only with this much room to spare (no flapping)


# ------------------------------------------------------------------ measuring


@dataclass(frozen=True)
class CpuTimes:
    """The machine's CPU time counters (jiffies, summed over all cores) and its core count."""

    busy: int
    total: int
    cores: int


def parse_proc_stat(text: str) -> CpuTimes:
    """The aggregate ``cpu`` line of ``/proc/stat``, and how many ``cpuN`` lines follow it.

    Busy is user + nice + system + irq + softirq + steal (guest time is already in user);
    idle is idle + iowait.
    """
    busy = total = cores = 0
    seen = False
    for line in text.splitlines():
        if line.startswith("cpu "):
            fields = [int(x) for x in line.split()[1:]]
            fields += [0] * (8 - len(fields))
            user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
            busy = user + nice + system + irq + softirq + steal
            total = busy + idle + iowait
            seen = True
        elif line.startswith("cpu"):
            cores += 1
    if not seen:
        raise ValueError("no aggregate cpu line in /proc/stat")
    return CpuTimes(busy, total, max(1, cores))


def busy_pct(before: CpuTimes, after: CpuTimes) -> float | None:
    """Share of all cores busy between two readings, 0..100; None when no time passed."""
    elapsed = after.total - before.total
    if elapsed <= 0:
        return None
    return min(100.0, max(0.0, 100.0 * (after.busy - before.busy) / elapsed))


def smooth(previous: float | None, sample: float, dt_s: float, tau_s: float = SMOOTHING_S) -> float:
    """An exponential moving average with time constant ``tau_s`` over samples ``dt_s`` apart."""
    if previous is None:
        return sample
    weight = 1.0 - math.exp(-max(0.0, dt_s) / tau_s)
    return previous + weight * (sample - previous)


@dataclass
class CallCost:
    """What one more call costs, in % of one core: ``prior_pct`` until learnt from running calls.

    Learnt from steady moments only (no call started or ended for :data:`SETTLE_S`): with no
    call the machine's busy figure is the baseline; with ``n`` calls, ``(busy - baseline) / n``
    is one call's cost. Before a baseline was seen it is 0, which overstates the cost (safe).
    The learnt figure is kept within [prior / 2, prior * 4]: a burst of other work on the
    machine must not make the server admit without end, nor refuse for good.
    """

    prior_pct: float
    alpha: float = 0.1
    baseline_pct: float = 0.0  # machine busy with no call, % of one core
    learnt_pct: float | None = None

    def observe(self, busy_core_pct: float, calls: int) -> None:
        """One steady sample: the machine's busy figure (% of ONE core, so up to 100 x cores)."""
        if calls <= 0:
            self.baseline_pct += self.alpha * (busy_core_pct - self.baseline_pct)
            return
        sample = max(0.0, busy_core_pct - self.baseline_pct) / calls
        old = self.prior_pct if self.learnt_pct is None else self.learnt_pct
        self.learnt_pct = old + self.alpha * (sample - old)

    @property
    def pct(self) -> float:
        if self.learnt_pct is None:
            return self.prior_pct
        return min(self.prior_pct * 4, max(self.prior_pct / 2, self.learnt_pct))


# ------------------------------------------------------------------ deciding


def seats(
    *,
    busy_pct: float | None,
    budget_pct: float,
    cores: int,
    call_pct: float,
    calls: int,
    starting: int,
    was_open: bool = True,
) -> int | None:
    """How many more calls may start now; None: no limit.

    ``busy_pct``: the machine's smoothed busy share of all cores (None before the first
    measurement: nothing to refuse on). ``call_pct``: one call's cost, % of one core.
    ``calls``: calls running and settled (in ``busy_pct``); ``starting``: calls just started
    and offers pending (not in it yet: their cost is reserved). ``was_open``: whether the
    last answer was more than 0; closed admission reopens only with
    :data:`REOPEN_MARGIN_PCT` to spare.
    """
    if budget_pct >= 100.0 or busy_pct is None:
        return None
    cost = call_pct / max(1, cores)  # one call, as a share of the whole machine
    headroom = budget_pct - busy_pct - starting * cost
    if not was_open:
        headroom -= REOPEN_MARGIN_PCT
    allowed = max(0, math.floor(headroom / cost)) if cost > 0 else 0
    if calls + starting == 0:
        allowed = max(allowed, 1)  # nothing to protect: a busy machine still serves someone
    return allowed


# ------------------------------------------------------------------ the shell


def read_proc_stat(path: Path = Path("/proc/stat")) -> CpuTimes:
    return parse_proc_stat(path.read_text())


class Admission:
    """The machine's CPU budget: samples ``/proc/stat`` on a task it owns, answers :meth:`seats`.

    ``on_sample`` is called after every sample (the switchboard wakes its timer task, which
    asks :meth:`seats` and hands the answer to the matchmaker); ``on_shed`` with the new step
    whenever the shedding level moves.
    """

    def __init__(
        self,
        *,
        budget_pct: float,
        shed_pct: float,
        call_pct: float,
        metrics: Metrics,
        on_sample: Callable[[], None] = lambda: None,
        on_shed: Callable[[ShedStep], None] = lambda step: None,
        read: Callable[[], CpuTimes] = read_proc_stat,
        interval_s: float = SAMPLE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget_pct = budget_pct
        self.shed_pct = shed_pct
        self.cost = CallCost(call_pct)
        self.metrics = metrics
        self.on_sample = on_sample
        self.on_shed = on_shed
        self.read = read
        self.interval_s = interval_s
        self.clock = clock
        self.busy_pct: float | None = None  # smoothed, % of all cores
        self.cores = 1
        self.open = True
        self.shed_level = 0
        self._shed_changed_at: float | None = None
        self._calls = 0  # settled calls at the last seats() answer
        self._running = 0  # every running call at the last seats() answer
        self._steady_since = clock()  # when the set of calls last changed
        self._task: asyncio.Task[None] | None = None
        metrics.admission_open.set(1)
        metrics.call_cpu.set(call_pct)

    @property
    def shedding(self) -> ShedStep:
        return SHED_STEPS[self.shed_level]

    async def start(self) -> None:
        # Sampled even with admission off (budget 100): /metrics shows the machine's busy figure.
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="admission-sampler")

    async def stop(self) -> None:
        """Cancel and await the sampler. Safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def report(self, *, waiting: int) -> dict[str, object]:
        """For /api/status: the budget, the machine's figure, who waits for it, what is shed."""
        return {
            "open": self.open,
            "cpu_busy_pct": None if self.busy_pct is None else round(self.busy_pct, 1),
            "cpu_budget_pct": self.budget_pct,
            "call_cpu_pct": round(self.cost.pct, 1),
            "waiting_for_capacity": waiting,
            "shedding": self.shedding.name,
        }

    def seats(self, now: float, call_starts: Sequence[float], offers: int) -> int | None:
        """How many more calls may start now (None: no limit). Logs when admission closes or opens.

        ``call_starts``: when each running call started; ``offers``: offers pending.
        """
        settled = sum(1 for started in call_starts if now - started >= SETTLE_S)
        starting = len(call_starts) - settled + offers
        if settled != self._calls or starting:
            self._steady_since = now
        self._calls = settled
        first_call = self._running == 0 and bool(call_starts)
        self._running = len(call_starts)
        if first_call:
            self._reshed(now)  # the first call on a busy machine sheds at once
        allowed = seats(
            busy_pct=self.busy_pct,
            budget_pct=self.budget_pct,
            cores=self.cores,
            call_pct=self.cost.pct,
            calls=settled,
            starting=starting,
            was_open=self.open,
        )
        is_open = allowed is None or allowed > 0
        if is_open != self.open:
            self.open = is_open
            self.metrics.admission_open.set(int(is_open))
            busy = f"{self.busy_pct:.0f}" if self.busy_pct is not None else "?"
            if is_open:
                logger.info(
                    "admission open: machine CPU %s%% of a %.0f%% budget, %d calls running",
                    busy,
                    self.budget_pct,
                    len(call_starts),
                )
            else:
                logger.warning(
                    "admission closed: machine CPU %s%% of a %.0f%% budget, %d calls running at"
                    " ~%.0f%% of a core each; new customers wait",
                    busy,
                    self.budget_pct,
                    len(call_starts),
                    self.cost.pct,
                )
        return allowed

    def sample(self, before: CpuTimes, after: CpuTimes, dt_s: float) -> None:
        """Fold one pair of readings in: busy figure, call cost, shedding level."""
        now = self.clock()
        self.cores = after.cores
        instant = busy_pct(before, after)
        if instant is None:
            return
        self.busy_pct = smooth(self.busy_pct, instant, dt_s)
        self.metrics.cpu_busy.set(round(self.busy_pct, 1))
        if now - self._steady_since >= SETTLE_S:
            self.cost.observe(self.busy_pct * self.cores, self._calls)
            self.metrics.call_cpu.set(round(self.cost.pct, 1))
        self._reshed(now)

    def _reshed(self, now: float) -> None:
        """Move the shedding level one step if the busy figure and the running calls say so."""
        level = next_shed_level(
            self.shed_level,
            calls=self._running,
            busy_pct=self.busy_pct,
            shed_pct=self.shed_pct,
            budget_pct=self.budget_pct,
            now=now,
            changed_at=self._shed_changed_at,
        )
        if level != self.shed_level:
            logger.warning(
                "shedding %s -> %s: machine CPU %.0f%% (shed above %.0f%%)",
                self.shedding.name,
                SHED_STEPS[level].name,
                self.busy_pct,
                self.shed_pct,
            )
            self.shed_level = level
            self._shed_changed_at = now
            self.metrics.shed_level.set(level)
            self.on_shed(self.shedding)

    async def _run(self) -> None:
        try:
            before = self.read()
        except (OSError, ValueError) as exc:  # not Linux, or /proc hidden: no figure to go by
            logger.warning("admission: cannot read the machine's CPU (%s); admission control is off", exc)
            return
        self.cores = before.cores
        last = self.clock()
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                after = self.read()
                now = self.clock()
                self.sample(before, after, now - last)
                before, last = after, now
                self.on_sample()
            except Exception:
                # An unreadable sample must not end admission control: the last figure stands.
                logger.exception("admission: CPU sample failed")
