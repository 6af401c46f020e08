"""Delay, jitter, loss (and a rate limit) in user space, for a kernel without ``netem``.

How: two TUN devices in the ``internet`` router, ``tu-SITE`` (upstream, packets from the site)
and ``td-SITE`` (downstream, packets to it), and policy routing that sends the site's traffic
through them::

    from the site (iif l-SITE)      -> table 100+i: default dev tu-SITE
    to the site's /24 (other iif)   -> table 200+i: SUBNET dev td-SITE
    coming back out of tu-/td-SITE  -> the main table, as if the TUN had never been there

A forwarder process (:mod:`benchmarks.netlab.forwarder`, run in the router's namespace)
reads each IP packet from a TUN device, drops or delays it as a :class:`Link` says (the
decision is :class:`benchmarks.netlab.shaper.Shaper`'s), then writes it back into the same TUN
device, where the kernel routes it on.
Why not an AF_PACKET bridge between two veths: a TUN device is a plain file descriptor with
one IP packet a read, needs no promiscuous bridge namespace, and leaves addresses and routing
of the topology untouched (an impairment is added and removed under live connections).

This module is the parent's side: the profiles (:class:`Link`, :class:`Profile`,
:data:`PROFILES`) and :class:`Impairment`, which sets up the TUN devices and routing, runs the
forwarder and talks to it. A new setting applies to the next packet read, so a switch takes
effect within one packet (queued packets keep their release times).

Cost and accuracy, measured by ``python -m benchmarks.netlab.measure``: see
benchmarks/netlab/README.md.
"""

from __future__ import annotations

import json
import math
import select
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.netlab.namespaces import Lab


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
            "benchmarks.netlab.forwarder",
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
