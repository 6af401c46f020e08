"""Per-call CPU: a process's CPU time, attributed to the rooms it holds.

How a room's share is counted, per sample interval (about a second):

1. The process's CPU time (user + system of all its threads, ``os.times()``) is read at
   both ends of the interval: ``process``.
2. A room's ``own`` time, measured per room:
   - its decoder threads (aiortc runs one for every track a room receives), read from
     ``/proc/self/task/<tid>/stat``;
   - its encoders' ``encode`` calls (the room's program encoder, media.program, and any
     sender's own encoder): the calling thread's CPU time (``time.thread_time``) around
     each call, which runs on the shared executor threads. An encoder is timed from the
     first sample after it appears (a new encoder's first second goes to the rest), and
     threads an encoder library starts itself are not seen (they go to the rest).
3. Everything else (the event loop: RTP/RTCP, SRTP, composing, packet forwarding; in
   the control process also signalling) cannot be told apart per room, so
   ``process - sum(own)`` is split evenly between the rooms.

A room's CPU % = (own + rest / rooms) / interval * 100, in % of one core. A room that
joins or leaves mid-interval still gets an even share of that interval's rest; the error
is at most one interval's share. :func:`attribute` is the pure arithmetic.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from media import aiortc_internals as internals
from media.room import Room

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def attribute(process_s: float, own_s: Mapping[str, float]) -> dict[str, float]:
    """Split ``process_s`` CPU seconds between rooms: each its ``own_s`` plus an even share
    of what no room's own threads account for (never below zero)."""
    if not own_s:
        return {}
    rest = max(0.0, process_s - sum(own_s.values())) / len(own_s)
    return {room: own + rest for room, own in own_s.items()}


def process_cpu_s() -> float:
    """This process's CPU time so far, user + system, all threads."""
    times = os.times()
    return times.user + times.system


def thread_cpu_s(tid: int) -> float | None:
    """One thread of this process: its CPU time so far, or None when it is gone."""
    try:
        with open(f"/proc/self/task/{tid}/stat", "rb") as file:
            fields = file.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime (fields 14 and 15)


def room_threads(room: Room) -> list[int]:
    """The kernel ids of a room's own threads: its receivers' decoder threads."""
    tids = []
    for pc in list(room.peers.values()):
        for receiver in pc.getReceivers():
            tid = internals.decoder_thread_id(receiver)
            if tid is not None:
                tids.append(tid)
    return tids


def room_encoders(room: Room) -> list[Any]:
    """The encoders a room runs: its program's (one per codec) and any sender's own."""
    encoders = list(room.encoders.values())
    for pc in list(room.peers.values()):
        for sender in pc.getSenders():
            encoder = internals.encoder(sender)
            if encoder is not None:
                encoders.append(encoder)
    return encoders


class EncodeClock:
    """CPU seconds one room's encoders have spent encoding (thread CPU time around each call)."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self._lock = threading.Lock()  # encodes of one room may finish on two threads at once

    def watch(self, encoder: Any) -> None:
        """Time ``encoder.encode`` from now on (once per encoder)."""
        if getattr(encoder, "_encode_clock", None) is self:
            return
        encode = encoder.encode

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return encode(*args, **kwargs)
            finally:
                spent = time.thread_time() - start
                with self._lock:
                    self.cpu_s += spent

        encoder.encode = timed
        encoder._encode_clock = self


class CpuMeter:
    """Samples this process's CPU and each room's share of it.

    Args:
        clock: monotonic seconds (passed in so tests can drive it).
        process: CPU seconds of the whole process so far.
        thread: CPU seconds of one thread so far, None once it has ended.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        process: Callable[[], float] = process_cpu_s,
        thread: Callable[[int], float | None] = thread_cpu_s,
    ) -> None:
        self._clock = clock
        self._process = process
        self._thread = thread
        self._at = clock()
        self._process_s = process()
        self._threads: dict[int, float] = {}
        self._encodes: dict[str, tuple[EncodeClock, float]] = {}  # room -> (clock, its last reading)
        self.process_pct = 0.0
        self.room_pct: dict[str, float] = {}

    @property
    def sampled_at(self) -> float:
        return self._at

    def sample(self, rooms: Iterable[tuple[str, Room]]) -> None:
        """Close the interval since the last sample; update ``process_pct`` and ``room_pct``."""
        now, process_s = self._clock(), self._process()
        interval = now - self._at
        if interval <= 0:
            return
        own: dict[str, float] = {}
        seen: dict[int, float] = {}
        encodes: dict[str, tuple[EncodeClock, float]] = {}
        for label, room in rooms:
            clock, last = self._encodes.get(label) or (EncodeClock(), 0.0)
            own[label] = clock.cpu_s - last
            encodes[label] = (clock, clock.cpu_s)
            for encoder in room_encoders(room):
                clock.watch(encoder)
            for tid in room_threads(room):
                cpu = self._thread(tid)
                if cpu is not None:
                    seen[tid] = cpu
                    own[label] += max(0.0, cpu - self._threads.get(tid, 0.0))
        spent = attribute(process_s - self._process_s, own)
        self.process_pct = (process_s - self._process_s) / interval * 100
        self.room_pct = {label: round(cpu / interval * 100, 1) for label, cpu in spent.items()}
        self._at, self._process_s, self._threads, self._encodes = now, process_s, seen, encodes
