"""Per-call CPU arithmetic (telepresence/room_cpu.py): pure, with the clocks passed in."""

from __future__ import annotations

import threading
import time

import pytest

from telepresence.room_cpu import CpuMeter, EncodeClock, attribute, process_cpu_s, thread_cpu_s


def test_each_room_gets_its_own_threads_and_an_even_share_of_the_rest():
    assert attribute(1.0, {"a": 0.3, "b": 0.1}) == pytest.approx({"a": 0.6, "b": 0.4})
    assert attribute(0.2, {"a": 0.3}) == {"a": 0.3}  # own threads read a tick ahead: no negative rest
    assert attribute(1.0, {}) == {}


class FakeRoom:
    """What CpuMeter reads of a room: its peers (none here, so no own threads) and encoders."""

    peers: dict = {}
    encoders: dict = {}


def test_the_meter_turns_cpu_seconds_into_percent_of_one_core_per_interval():
    now, cpu = [0.0], [0.0]
    meter = CpuMeter(clock=lambda: now[0], process=lambda: cpu[0], thread=lambda tid: None)
    now[0], cpu[0] = 2.0, 1.0
    meter.sample([("call-1", FakeRoom()), ("call-2", FakeRoom())])
    assert meter.process_pct == pytest.approx(50.0)
    assert meter.room_pct == {"call-1": 25.0, "call-2": 25.0}
    now[0], cpu[0] = 3.0, 1.9
    meter.sample([("call-2", FakeRoom())])  # call-1 ended: its series is gone
    assert meter.room_pct == {"call-2": 90.0}


def test_thread_and_process_cpu_are_read_from_the_kernel():
    stop = threading.Event()
    tids = []

    def busy() -> None:
        tids.append(threading.get_native_id())
        total = 0
        while not stop.is_set():
            total += sum(range(1000))

    thread = threading.Thread(target=busy)
    before = process_cpu_s()
    thread.start()
    try:
        stop.wait(0.3)
        assert (thread_cpu_s(tids[0]) or 0) > 0.05  # a live thread's own CPU
    finally:
        stop.set()
        thread.join()
    assert process_cpu_s() - before > 0.05
    assert thread_cpu_s(2**22 + 12345) is None  # no such thread


def test_an_encode_clock_times_each_encode_call_once_per_encoder():
    class Encoder:
        def encode(self, frame, force_keyframe=False):
            end = time.thread_time() + 0.02
            while time.thread_time() < end:
                pass
            return [frame], 0

    clock, encoder = EncodeClock(), Encoder()
    clock.watch(encoder)
    clock.watch(encoder)  # watched twice: timed once
    assert encoder.encode(b"x") == ([b"x"], 0)
    assert 0.02 <= clock.cpu_s < 0.04
