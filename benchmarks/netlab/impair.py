"""Delay, jitter, loss (and a rate limit) in user space, for a kernel without ``netem``.

How: two TUN devices in the ``internet`` router, ``tu-SITE`` (upstream, packets from the site)
and ``td-SITE`` (downstream, packets to it), and policy routing that sends the site's traffic
through them::

    from the site (iif l-SITE)      -> table 100+i: default dev tu-SITE
    to the site's /24 (other iif)   -> table 200+i: SUBNET dev td-SITE
    coming back out of tu-/td-SITE  -> the main table, as if the TUN had never been there

A forwarder process (``python -m benchmarks.netlab.impair``, run in the router's namespace)
reads each IP packet from a TUN device, drops it with probability ``loss`` (a seeded
``random.Random`` per direction: the same packet sequence loses the same packets), holds it for
``delay_ms`` plus a jitter drawn uniformly from ``[-jitter_ms, +jitter_ms]`` (netem's default
distribution), then writes it back into the same TUN device, where the kernel routes it on.
It runs SCHED_FIFO when allowed, so that other work on a busy machine does not show as network
delay, and waits in select(2), whose timeout is in microseconds (epoll's is whole milliseconds).
Why not an AF_PACKET bridge between two veths: a TUN device is a plain file descriptor with
one IP packet a read, needs no promiscuous bridge namespace, and leaves addresses and routing
of the topology untouched (an impairment is added and removed under live connections).

Order: by default packets leave in the order they came (a packet's release time is never
earlier than its predecessor's), which is what one path on a real link does; the jitter then
shows as bunching rather than reordering, and a burst (a video frame's packets) leaves
together at its latest member's time: a bursty stream sees a mean delay nearer
``delay + jitter`` than ``delay``. ``reorder=True`` lets a packet overtake another
(netem's behaviour with jitter). With ``rate_kbps`` each packet also waits for its turn on a
link of that rate (queueing after the delay, like a bottleneck router; packets that would wait
longer than ``queue_ms`` are dropped at the tail).

Control: the forwarder reads JSON lines on stdin (``{"cmd": "set", "up": {...}, "down": {...}}``,
``{"cmd": "stats"}``) and answers each on stdout; a new setting applies to the next packet read,
so a switch takes effect within one packet (queued packets keep their release times). It exits
when stdin closes, so it never outlives its :class:`Impairment`.

Cost and accuracy, measured by ``python -m benchmarks.netlab.measure``: see
benchmarks/netlab/README.md.
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
import select
import selectors
import signal
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.netlab.namespaces import Lab

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


@dataclass(frozen=True)
class Link:
    """One direction's impairment."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    rate_kbps: float | None = None
    queue_ms: float = 300.0


@dataclass(frozen=True)
class Profile:
    """A named pair of directions: ``up`` from the site, ``down`` to it."""

    name: str
    up: Link = field(default_factory=Link)
    down: Link = field(default_factory=Link)

    @classmethod
    def round_trip(
        cls,
        name: str,
        rtt_ms: float,
        jitter_ms: float = 0.0,
        loss: float = 0.0,
        rate_kbps: float | None = None,
    ) -> Profile:
        """Half the RTT and of the jitter on either direction; each direction loses
        ``1 - sqrt(1 - loss)`` so that a round trip loses ``loss``."""
        one_way = Link(rtt_ms / 2, jitter_ms / 2, 1 - math.sqrt(1 - loss), rate_kbps)
        return cls(name, one_way, one_way)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "up": asdict(self.up), "down": asdict(self.down)}


PROFILES = {
    p.name: p
    for p in (
        Profile("clean"),
        Profile.round_trip("wifi", rtt_ms=20, jitter_ms=5, loss=0.005),
        Profile.round_trip("mobile", rtt_ms=100, jitter_ms=20, loss=0.02),
        Profile.round_trip("bad", rtt_ms=200, loss=0.05),
    )
}


def profile_of(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown profile {profile!r}; one of {sorted(PROFILES)}") from None


# -- the parent's side --------------------------------------------------------------------------


class Impairment:
    """The impairment of one site's link: TUN devices, routing and the forwarder process.

    Made by :meth:`benchmarks.netlab.namespaces.Lab.impair`.
    """

    def __init__(self, lab: Lab, role: str, profile: str | Profile, *, seed: int, reorder: bool) -> None:
        from benchmarks.netlab.namespaces import INTERNET, SITES

        self._lab = lab
        self._site = SITES[role]
        self.role = role
        self.up_dev = f"tu-{role}"
        self.down_dev = f"td-{role}"
        self.profile = profile_of(profile)
        self._closed = False
        site, i = self._site, self._site.index
        self._tables = (str(100 + i), str(200 + i))
        for dev in (self.up_dev, self.down_dev):
            lab.ip(INTERNET, "tuntap", "add", "dev", dev, "mode", "tun")
            lab.ip(INTERNET, "link", "set", dev, "up")
        argv = [
            sys.executable,
            "-m",
            "benchmarks.netlab.impair",
            "--up",
            self.up_dev,
            "--down",
            self.down_dev,
        ]
        argv += ["--seed", str(seed)] + (["--reorder"] if reorder else [])
        self._process = lab.popen(
            INTERNET, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        ready = self._reply(timeout=10.0)
        if not ready.get("ready"):
            raise RuntimeError(f"impairment forwarder did not start: {ready}")
        self.set(self.profile)
        up_table, down_table = self._tables
        lab.ip(INTERNET, "route", "add", "table", up_table, "default", "dev", self.up_dev)
        lab.ip(INTERNET, "route", "add", "table", down_table, site.subnet, "dev", self.down_dev)
        self._rules = [
            ("pref", "1000", "iif", self.up_dev, "lookup", "main"),
            ("pref", "1000", "iif", self.down_dev, "lookup", "main"),
            ("pref", "1100", "iif", site.link, "lookup", up_table),
            ("pref", "1200", "to", site.subnet, "lookup", down_table),
        ]
        for rule in self._rules:
            lab.ip(INTERNET, "rule", "add", *rule)

    @property
    def pid(self) -> int:
        return self._process.pid

    def set(self, profile: str | Profile) -> None:
        """Switch to another profile; applies to the next packet each direction reads."""
        self.profile = profile_of(profile)
        reply = self._command({"cmd": "set", **self.profile.to_json()})
        if not reply.get("ok"):
            raise RuntimeError(f"impairment refused {self.profile}: {reply}")

    def stats(self) -> dict[str, Any]:
        """Counters of each direction (``received``, ``dropped``, ``sent``, ``queued``) and the
        forwarder's CPU seconds (``cpu_s``)."""
        return self._command({"cmd": "stats"})

    def _command(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(message) + "\n")
        self._process.stdin.flush()
        return self._reply(timeout=5.0)

    def _reply(self, timeout: float) -> dict[str, Any]:
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        line = self._process.stdout.readline() if ready else ""
        if not line:
            err = (
                self._process.stderr.read()
                if self._process.poll() is not None and self._process.stderr
                else ""
            )
            raise RuntimeError(f"impairment forwarder gave no answer (exit {self._process.poll()}): {err}")
        return json.loads(line)

    def close(self, *, restore: bool = True) -> None:
        """Stop the forwarder; with ``restore`` put the plain link back (rules, routes, TUNs)."""
        if self._closed:
            return
        self._closed = True
        from benchmarks.netlab.namespaces import INTERNET

        if restore:
            for rule in self._rules:
                self._lab.ip(INTERNET, "rule", "del", *rule, check=False)
            for table in self._tables:
                self._lab.ip(INTERNET, "route", "flush", "table", table, check=False)
        self._lab.stop(self._process)
        if restore:
            for dev in (self.up_dev, self.down_dev):
                self._lab.ip(INTERNET, "link", "del", dev, check=False)
        self._lab._forget(self)

    def __enter__(self) -> Impairment:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# -- the forwarder (runs in the router's namespace) ---------------------------------------------


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
