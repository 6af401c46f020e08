"""The admission shell: readings folded in, one log line per change, a sampler task it owns."""

from __future__ import annotations

import asyncio
import logging

from telepresence.admission import Admission, CpuTimes, read_proc_stat
from telepresence.metrics import Metrics
from telepresence.shedding import ShedStep


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def reading(busy_pct: float, at: int, cores: int = 2) -> CpuTimes:
    """A /proc/stat reading ``at`` seconds in (100 jiffies a second a core), ``busy_pct`` busy since 0."""
    total = at * 100 * cores
    return CpuTimes(busy=round(total * busy_pct / 100), total=total, cores=cores)


def gauge(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


def test_readings_make_the_busy_figure_and_the_limit(caplog):
    caplog.set_level(logging.INFO, logger="telepresence.admission")
    clock, metrics = Clock(), Metrics()
    admission = Admission(budget_pct=85, shed_pct=100, call_pct=40, metrics=metrics, clock=clock)
    assert admission.seats(0, [], 0) is None  # nothing measured yet: nothing to refuse on
    admission.sample(reading(0, 0), reading(30, 10), 10)
    assert admission.busy_pct == 30 and gauge(metrics, "telepresence_cpu_busy_pct") == 30
    clock.now = 100
    # 2 cores: a call is 20 % of the machine; 55 % of room holds 2.
    assert admission.seats(100, [0.0], 0) == 2
    assert admission.seats(100, [0.0], 2) == 0  # two offers pending use it up
    assert admission.seats(101, [0.0], 2) == 0
    assert admission.seats(102, [0.0, 101.0], 1) == 0
    assert admission.seats(103, [0.0], 0) == 2
    closed = [r for r in caplog.records if "admission closed" in r.getMessage()]
    opened = [r for r in caplog.records if "admission open" in r.getMessage()]
    assert len(closed) == 1 and len(opened) == 1  # one line per change, whatever the calls
    assert gauge(metrics, "telepresence_admission_open") == 1


def test_the_cost_of_a_call_is_learnt_from_steady_moments_only():
    clock, metrics = Clock(), Metrics()
    admission = Admission(budget_pct=85, shed_pct=100, call_pct=40, metrics=metrics, clock=clock)
    at = 0
    for busy, calls in ((10.0, 0), (40.0, 2)):  # idle 10 %, then 2 calls: +30 % of 2 cores
        for _ in range(200):
            clock.now = at + 1
            admission.seats(clock.now, [-100.0] * calls, 0)  # calls long settled
            admission.sample(reading(busy, at), reading(busy, at + 1), 1)
            at += 1
    assert 25 < admission.cost.pct < 35  # 30 % of one core per call, learnt
    assert gauge(metrics, "telepresence_call_cpu_pct") == round(admission.cost.pct, 1)


def test_shedding_steps_reach_the_owner_and_the_metric():
    clock, metrics = Clock(), Metrics()
    steps: list[ShedStep] = []
    admission = Admission(
        budget_pct=85, shed_pct=90, call_pct=40, metrics=metrics, clock=clock, on_shed=steps.append
    )
    admission.sample(reading(99, 0), reading(99, 1), 1)
    assert steps == []  # no call running: nothing to shed, whatever keeps the machine busy
    admission.seats(0, [0.0, 0.0], 0)  # two calls
    for at in range(0, 60, 1):
        clock.now = at
        admission.sample(reading(99, at), reading(99, at + 1), 1)
    assert [s.name for s in steps] == ["screen_fps_15", "screen_fps_5", "screen_half_resolution"]
    assert gauge(metrics, "telepresence_shed_level") == 3
    for at in range(60, 200, 1):
        clock.now = at
        admission.sample(reading(20, at), reading(20, at + 1), 1)
    assert steps[-1].name == "full" and admission.shed_level == 0


async def test_the_sampler_reads_the_real_machine_and_stops_cleanly():
    metrics = Metrics()
    samples: list[None] = []
    admission = Admission(
        budget_pct=85,
        shed_pct=95,
        call_pct=40,
        metrics=metrics,
        interval_s=0.05,
        on_sample=lambda: samples.append(None),
    )
    await admission.start()
    for _ in range(400):
        if len(samples) >= 2:
            break
        await asyncio.sleep(0.01)
    assert admission.busy_pct is not None and 0 <= admission.busy_pct <= 100
    assert admission.cores >= 1
    await admission.stop()
    await admission.stop()  # twice is fine
    count = len(samples)
    await asyncio.sleep(0.15)
    assert len(samples) == count  # stopped means stopped


async def test_a_machine_whose_cpu_cannot_be_read_runs_without_admission(caplog, tmp_path):
    def unreadable() -> CpuTimes:
        return read_proc_stat(tmp_path / "no-such-stat")

    admission = Admission(budget_pct=85, shed_pct=95, call_pct=40, metrics=Metrics(), read=unreadable)
    await admission.start()
    for _ in range(100):
        if any("admission control is off" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("no warning")
    await admission.stop()
    assert admission.seats(0, [0.0], 0) is None
