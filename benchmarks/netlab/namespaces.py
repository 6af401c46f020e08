"""A small internet in network namespaces: a server, a customer behind NAT, a firewalled agent, TURN.

Topology (every box a namespace named ``{prefix}{pid}-{role}``, so parallel runs never clash)::

    customer 192.168.77.2 --lan-- home 192.168.77.1 | 198.18.3.2 --+
                                  (iptables MASQUERADE)            |
    agent    198.18.4.2 ----------------------------------------- internet (router, 198.18.N.1)
    server   198.18.1.2 -----------------------------------------  |   (agent's UDP dropped here)
    turn     198.18.2.2 ----------------------------------------- -+

The root namespace is not part of it (its loopback cannot be reached from a namespace), so the
server, coturn and every peer run inside a namespace through :meth:`Lab.popen`. Each site has a
/24 link to the ``internet`` router; the router knows nothing of the customer's LAN, so the
customer reaches the world only through the home router's NAT. The agent's "corporate firewall"
(filter rules in the router, on the agent's link) drops UDP both ways: only TCP (TURN over TCP
or TLS) gets through. IPv6 is off everywhere, so ICE gathers one address a peer.

Nothing is made in the root namespace: veths are created with both ends inside namespaces and
every rule lives in a namespace's own tables, so deleting the namespaces removes everything.
:class:`Lab` does that on exit, whatever ended the block (an exception, KeyboardInterrupt,
SIGTERM where nobody else handles it), and :func:`cleanup_stale` removes what a killed run
(``kill -9``) left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.netlab.impair import Impairment, Profile

PREFIX = "tpnl"
INTERNET = "internet"
CUSTOMER_LAN = "192.168.77"


class NetlabError(RuntimeError):
    """A command that builds or drives the lab failed."""


@dataclass(frozen=True)
class Site:
    """A namespace linked to the ``internet`` router by its own /24 (``198.18.{index}.0/24``)."""

    role: str
    index: int

    @property
    def subnet(self) -> str:
        return f"198.18.{self.index}.0/24"

    @property
    def address(self) -> str:
        """The site's public address (the home router's WAN address for ``home``)."""
        return f"198.18.{self.index}.2"

    @property
    def gateway(self) -> str:
        return f"198.18.{self.index}.1"

    @property
    def link(self) -> str:
        """The name of the site's link inside the ``internet`` namespace."""
        return f"l-{self.role}"


SITES = {s.role: s for s in (Site("server", 1), Site("turn", 2), Site("home", 3), Site("agent", 4))}
ROLES = (INTERNET, *SITES, "customer")


def unavailable() -> str | None:
    """Why the lab cannot run on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool, package in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian: apt-get install {package})"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing (the impairment forwarder needs a TUN device)"
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 10.0) -> str:
    """Run a command to completion and return its stdout; raise NetlabError when it fails."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise NetlabError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def list_namespaces() -> list[str]:
    """Names of the network namespaces ``ip netns`` knows."""
    return [line.split()[0] for line in run(["ip", "netns", "list"]).splitlines() if line.strip()]


def _kill_namespace(netns: str) -> None:
    """SIGKILL whatever still runs in ``netns``, then delete it (its veths and rules go with it)."""
    for pid in run(["ip", "netns", "pids", netns], check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    run(["ip", "netns", "del", netns], check=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale(prefix: str = PREFIX, *, everything: bool = False) -> list[str]:
    """Delete namespaces left by killed runs: ``{prefix}{pid}-*`` whose pid is gone.

    With ``everything=True`` it deletes every ``{prefix}*`` namespace, live runs' included.
    Returns the names it deleted.
    """
    removed = []
    for netns in list_namespaces():
        if not netns.startswith(prefix):
            continue
        pid_text = netns[len(prefix) :].split("-", 1)[0]
        if not everything and (not pid_text.isdigit() or _pid_alive(int(pid_text))):
            continue  # a live run's, or not named by a Lab
        _kill_namespace(netns)
        removed.append(netns)
    return removed


def stop_process(process: subprocess.Popen[Any], timeout: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; always reaps."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(timeout)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


class Lab:
    """The topology above, for the length of a ``with`` block.

    >>> with Lab() as lab:
    ...     server = lab.popen("server", ["python", "-m", "http.server", "-b", lab.address("server")])
    ...     impairment = lab.impair("customer", "mobile")  # the customer's access link
    ...     impairment.set("bad")  # from the next packet on

    Args:
        prefix: the start of every namespace name; :func:`cleanup_stale` takes the same.
        agent_udp_blocked: start with the agent's UDP dropped (:meth:`block_udp` changes it).
    """

    def __init__(self, prefix: str = PREFIX, *, agent_udp_blocked: bool = True) -> None:
        self.prefix = prefix
        self.tag = f"{prefix}{os.getpid()}"
        self._agent_udp_blocked = agent_udp_blocked
        self._made: list[str] = []
        self._processes: list[subprocess.Popen[Any]] = []
        self._impairments: list[Impairment] = []
        self._previous_sigterm: Any = None

    # -- names and addresses ---------------------------------------------------------------

    def netns(self, role: str) -> str:
        """The namespace name of ``role`` (one of ROLES)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; one of {ROLES}")
        return f"{self.tag}-{role}"

    def address(self, role: str) -> str:
        """The address ``role`` has on its own link (the customer's is private, behind NAT)."""
        if role == "customer":
            return f"{CUSTOMER_LAN}.2"
        if role == INTERNET:
            raise ValueError("the internet router has one address a link: use SITES[role].gateway")
        return SITES[role].address

    def public_address(self, role: str) -> str:
        """The address the rest of the world sees ``role`` come from (the customer's is home's)."""
        return SITES["home"].address if role == "customer" else self.address(role)

    @property
    def namespaces(self) -> list[str]:
        """The namespaces this lab has made so far."""
        return list(self._made)

    # -- running things --------------------------------------------------------------------

    def ip(self, role: str, *args: str, check: bool = True) -> str:
        """``ip -n NS ARGS``."""
        return run(["ip", "-n", self.netns(role), *args], check=check)

    def run_in(self, role: str, argv: Sequence[str], *, check: bool = True, timeout: float = 30.0) -> str:
        """Run a command to completion inside ``role``'s namespace and return its stdout."""
        return run(["ip", "netns", "exec", self.netns(role), *argv], check=check, timeout=timeout)

    def popen(self, role: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a process inside ``role``'s namespace (``ip netns exec`` execs it: same pid).

        The lab stops it on exit if nobody did before; :meth:`stop` stops it now.
        """
        process = subprocess.Popen(["ip", "netns", "exec", self.netns(role), *argv], **kwargs)
        self._processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[Any], timeout: float = 3.0) -> None:
        """Stop a process :meth:`popen` started (SIGTERM, then SIGKILL)."""
        stop_process(process, timeout)
        with contextlib.suppress(ValueError):
            self._processes.remove(process)

    def iptables(self, role: str, *args: str) -> str:
        return self.run_in(role, ["iptables", "-w", *args])

    # -- policies --------------------------------------------------------------------------

    def block_udp(self, role: str = "agent", blocked: bool = True) -> None:
        """Drop (or pass again) every UDP packet to and from a site, in the internet router.

        A silent drop, as a corporate firewall does, not a refusal: ICE waits and times out.
        """
        site = SITES[role]
        chain = f"FW-{role}"
        self.iptables(INTERNET, "-F", chain)
        if blocked:
            self.iptables(INTERNET, "-A", chain, "-i", site.link, "-p", "udp", "-j", "DROP")
            self.iptables(INTERNET, "-A", chain, "-o", site.link, "-p", "udp", "-j", "DROP")

    def impair(
        self, role: str, profile: str | Profile = "clean", *, seed: int = 1, reorder: bool = False
    ) -> Impairment:
        """Delay, jitter and drop the packets of one site's link (``home`` is the customer's).

        Returns the running :class:`~benchmarks.netlab.impair.Impairment`; ``set(profile)``
        switches it, ``close()`` (or the lab's exit) restores the plain link.
        """
        from benchmarks.netlab.impair import Impairment

        impairment = Impairment(
            self, "home" if role == "customer" else role, profile, seed=seed, reorder=reorder
        )
        self._impairments.append(impairment)
        return impairment

    def _forget(self, impairment: Impairment) -> None:
        with contextlib.suppress(ValueError):
            self._impairments.remove(impairment)

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        self._trap_sigterm()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _add_namespace(self, role: str) -> None:
        netns = self.netns(role)
        self._made.append(netns)  # before it exists: a half-made lab is torn down too
        run(["ip", "netns", "add", netns])
        self.ip(role, "link", "set", "lo", "up")
        for key in ("all", "default"):
            self.run_in(role, ["sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1"])
            # A packet coming back out of a TUN device arrives on it with a foreign source.
            self.run_in(role, ["sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=0"])

    def _veth(self, a_role: str, a_name: str, b_role: str, b_name: str) -> None:
        run(
            ["ip", "link", "add", a_name, "netns", self.netns(a_role), "type", "veth",
             "peer", "name", b_name, "netns", self.netns(b_role)]
        )  # fmt: skip
        self.ip(a_role, "link", "set", a_name, "up")
        self.ip(b_role, "link", "set", b_name, "up")

    def _build(self) -> None:
        for role in ROLES:
            self._add_namespace(role)
        for role in (INTERNET, "home"):
            self.run_in(role, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        # The router only routes: tracking connections there would see each packet twice when
        # it loops through an impairment's TUN device.
        self.iptables(INTERNET, "-t", "raw", "-A", "PREROUTING", "-j", "NOTRACK")
        for site in SITES.values():
            inside = "wan0" if site.role == "home" else "eth0"
            self._veth(INTERNET, site.link, site.role, inside)
            self.ip(INTERNET, "addr", "add", f"{site.gateway}/24", "dev", site.link)
            self.ip(site.role, "addr", "add", f"{site.address}/24", "dev", inside)
            self.ip(site.role, "route", "add", "default", "via", site.gateway)
            self.iptables(INTERNET, "-N", f"FW-{site.role}")
            self.iptables(INTERNET, "-A", "FORWARD", "-j", f"FW-{site.role}")
        self._veth("home", "lan0", "customer", "eth0")
        self.ip("home", "addr", "add", f"{CUSTOMER_LAN}.1/24", "dev", "lan0")
        self.ip("customer", "addr", "add", f"{CUSTOMER_LAN}.2/24", "dev", "eth0")
        self.ip("customer", "route", "add", "default", "via", f"{CUSTOMER_LAN}.1")
        self.iptables("home", "-t", "nat", "-A", "POSTROUTING", "-o", "wan0", "-j", "MASQUERADE")
        # A home router takes no unsolicited connection from outside to its LAN.
        self.iptables("home", "-A", "FORWARD", "-i", "wan0", "-m", "conntrack", "--ctstate",
                      "ESTABLISHED,RELATED", "-j", "ACCEPT")  # fmt: skip
        self.iptables("home", "-A", "FORWARD", "-i", "wan0", "-j", "DROP")
        if self._agent_udp_blocked:
            self.block_udp("agent", True)

    def close(self) -> None:
        """Stop every process and impairment, delete every namespace (with its veths and rules).

        Safe to call twice. SIGINT is held off until the teardown is done, so a Ctrl-C in the
        middle cannot leave half a lab behind; it is raised afterwards.
        """
        with _sigint_deferred():
            for impairment in list(self._impairments):
                with contextlib.suppress(Exception):
                    impairment.close(restore=False)
            self._impairments.clear()
            for process in reversed(self._processes):
                with contextlib.suppress(Exception):
                    stop_process(process)
            self._processes.clear()
            for netns in reversed(self._made):
                _kill_namespace(netns)
            self._made.clear()
            if self._previous_sigterm is not None:
                signal.signal(signal.SIGTERM, self._previous_sigterm)
                self._previous_sigterm = None

    def _trap_sigterm(self) -> None:
        """Turn SIGTERM (a CI timeout, ``kill``) into SystemExit, so that the ``with`` block unwinds
        and tears the lab down; only where nobody handles SIGTERM already (the default action
        would end the process at once and leave every namespace behind)."""
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            self._previous_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Block SIGINT for this thread while the body runs; a pending one is delivered after."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
