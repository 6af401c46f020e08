"""The impairment forwarder: ``python -m benchmarks.netlab.forwarder --up DEV --down DEV``.

Run by :class:`benchmarks.netlab.impair.Impairment` in the ``internet`` router's namespace, it
reads each IP packet from a TUN device, drops it with probability ``loss`` (a seeded
``random.Random`` per direction: the same packet sequence loses the same packets), holds it for
``delay_ms`` plus a jitter drawn uniformly from ``[-jitter_ms, +jitter_ms]`` (netem's default
distribution), then writes it back into the same TUN device, where the kernel routes it on.
It runs SCHED_FIFO when allowed, so that other work on a busy machine does not show as network
delay, and waits in select(2), whose timeout is in microseconds (epoll's is whole milliseconds).

Order: by default packets leave in the order they came (a packet's release time is never
earlier than its predecessor's), which is what one path on a real link does; the jitter then
shows as bunching rather than reordering, and a burst (a video frame's packets) leaves
together at its latest member's time: a bursty stream sees a mean delay nearer
``delay + jitter`` than ``delay``. ``reorder=True`` lets a packet overtake another
(netem's behaviour with jitter). With ``rate_kbps`` each packet also waits for its turn on a
link of that rate (queueing after the delay, like a bottleneck router; packets that would wait
longer than ``queue_ms`` are dropped at the tail). These decisions are
:class:`benchmarks.netlab.shaper.Shaper`'s.

Control: the forwarder reads JSON lines on stdin (``{"cmd": "set", "up": {...}, "down": {...}}``,
``{"cmd": "stats"}``) and answers each on stdout; a new setting applies to the next packet read,
so a switch takes effect within one packet (queued packets keep their release times). It exits
when stdin closes, so it never outlives its :class:`~benchmarks.netlab.impair.Impairment`.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import heapq
import json
import math
import os
import random
import selectors
import signal
import struct
import sys
import time
from typing import Any

from benchmarks.netlab.impair import Link
from benchmarks.netlab.shaper import Shaper

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def try_realtime(priority: int = 10) -> bool:
    """Run this process SCHED_FIFO when allowed (root), so that a busy machine does not show as
    network delay. Safe for these processes: they only ever block in select(2) between packets."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (AttributeError, OSError):
        return False
    return True


def open_tun(name: str) -> int:
    """Attach to the TUN device ``name`` (made by ``ip tuntap add ... mode tun``); non-blocking."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class Direction:
    """One TUN device's packets: read, drop or delay (by a :class:`Shaper`), write back."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, rng: random.Random, reorder: bool) -> None:
        self._loop = loop
        self._fd = fd
        self.shaper = Shaper(rng, reorder)
        self._heap: list[tuple[float, int, bytes]] = []
        self._seq = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self.received = self.dropped = self.sent = 0
        loop.add_reader(fd, self._on_readable)

    def _on_readable(self) -> None:
        while True:
            try:
                packet = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            self.received += 1
            release = self.shaper.admit(len(packet), self._loop.time())
            if release is None:
                self.dropped += 1
                continue
            self._seq += 1
            heapq.heappush(self._heap, (release, self._seq, packet))
        self._flush()

    def _flush(self) -> None:
        # Release what is due within 0.2 ms: a second wake-up would cost more than that.
        now = self._loop.time() + 0.0002
        while self._heap and self._heap[0][0] <= now:
            _, _, packet = heapq.heappop(self._heap)
            try:
                os.write(self._fd, packet)
                self.sent += 1
            except OSError:  # a full TUN queue or a vanished route: the packet is lost
                self.dropped += 1
        if self._heap and self._heap[0][0] < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = self._heap[0][0]
            self._timer = self._loop.call_at(self._timer_at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        self._flush()

    def stats(self) -> dict[str, int]:
        return {
            "received": self.received,
            "dropped": self.dropped,
            "sent": self.sent,
            "queued": len(self._heap),
        }


async def forward(up: str, down: str, seed: int, reorder: bool) -> None:
    loop = asyncio.get_running_loop()
    directions = {
        "up": Direction(loop, open_tun(up), random.Random(seed), reorder),
        "down": Direction(loop, open_tun(down), random.Random(seed + 1), reorder),
    }
    done: asyncio.Future[None] = loop.create_future()

    def finish() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_signal_handler(signal.SIGTERM, finish)
    buffer = b""

    def answer(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    def on_command() -> None:
        nonlocal buffer
        chunk = os.read(sys.stdin.fileno(), 65536)
        if not chunk:  # the Impairment is gone: so is the forwarder
            finish()
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            try:
                message = json.loads(line)
                if message["cmd"] == "set":
                    for name in ("up", "down"):
                        directions[name].shaper.link = Link(**message[name])
                    answer({"ok": True})
                elif message["cmd"] == "stats":
                    answer({**{k: d.stats() for k, d in directions.items()}, "cpu_s": time.process_time()})
                else:
                    answer({"error": f"unknown command {message['cmd']!r}"})
            except (ValueError, KeyError, TypeError) as exc:
                answer({"error": repr(exc)})

    loop.add_reader(sys.stdin.fileno(), on_command)
    answer({"ready": True, "pid": os.getpid()})
    await done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="TUN delay/jitter/loss forwarder (see the module docstring)")
    parser.add_argument("--up", required=True, help="TUN device of packets from the site")
    parser.add_argument("--down", required=True, help="TUN device of packets to the site")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reorder", action="store_true", help="let jitter reorder packets")
    args = parser.parse_args(argv)
    try_realtime()
    # select(2) takes its timeout in microseconds; epoll, asyncio's default, rounds it up to a
    # whole millisecond, which made every held packet up to 1 ms late.
    with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(selectors.SelectSelector())) as runner:
        runner.run(forward(args.up, args.down, args.seed, args.reorder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
