"""Where each room's media runs and what it costs, for /metrics and the receipts.

Workers measure their own process and rooms and report them (telepresence.media_worker);
the rooms this process holds itself are measured here, by the same
:class:`~telepresence.room_cpu.CpuMeter`. Series exist only for live rooms and running
processes: each read starts from empty gauges, so an ended call leaves no series behind.
"""

from __future__ import annotations

import time

from telepresence.metrics import Metrics
from telepresence.room_cpu import CpuMeter
from telepresence.room_handle import LocalRoom, RoomHandle
from telepresence.worker_pool import WorkerPool

CONTROL = "control"  # the worker label of this process


class MediaLoad:
    """Every live room by call (or lobby) id, and the CPU each process and room uses."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.rooms: dict[str, RoomHandle] = {}
        self._meter = CpuMeter()

    def sample(self) -> None:
        """This process's CPU and its own rooms' shares, at most once a second."""
        if time.monotonic() - self._meter.sampled_at < 1.0:
            return
        local = [(call_id, room) for call_id, room in self.rooms.items() if isinstance(room, LocalRoom)]
        self._meter.sample(local)
        for call_id, room in local:
            room.cpu_pct = self._meter.room_pct.get(call_id)

    def publish(self, pool: WorkerPool | None) -> None:
        """Per media process CPU and rooms, and per live call CPU, into the gauges."""
        self.sample()
        for gauge in (self.metrics.worker_cpu, self.metrics.worker_rooms, self.metrics.live_call_cpu):
            gauge.clear()
        self.metrics.worker_cpu.labels(CONTROL).set(round(self._meter.process_pct, 1))
        counts = {CONTROL: 0}
        for name, cpu in (pool.cpu_by_worker() if pool is not None else {}).items():
            self.metrics.worker_cpu.labels(name).set(cpu)
            counts[name] = 0
        for call_id, room in self.rooms.items():
            where = room.worker or CONTROL
            counts[where] = counts.get(where, 0) + 1
            if room.cpu_pct is not None:
                self.metrics.live_call_cpu.labels(call_id, where).set(room.cpu_pct)
        for name, count in counts.items():
            self.metrics.worker_rooms.labels(name).set(count)
