"""A media worker process's first code: its signals, before the slow imports.

The "spawn" start method imports only this small module to start a worker, so the
worker ignores SIGINT and SIGTERM within moments of starting rather than after its
seconds of importing aiortc, PyAV and numpy: Ctrl-C reaches the whole process group,
and a service manager's SIGTERM often does too. The control process decides when
workers stop (it closes their calls first), and a worker whose control process is gone
sees its socket close and exits (telepresence.media_worker).

A worker with a raised priority (the control process sets its niceness) also runs in a
session of its own where the kernel groups CPU time by session (autogroup, on in Debian's
and Ubuntu's kernels): there a niceness ranks a process only within its session, and every
session gets an equal share first. Measured in the browser suite, a busy process started
beside the server from the same shell delayed the worker's reading of packets by up to
1.1 s (p95 0.4-1 s) at niceness -5, the worker using 16 % of a core.
"""

from __future__ import annotations

import os
import signal
import socket
import time

AUTOGROUP_SWITCH = "/proc/sys/kernel/sched_autogroup_enabled"
AUTOGROUP_TRIES, AUTOGROUP_RETRY_S = 30, 0.11


def main(
    sock: socket.socket,
    name: str,
    log_level: str,
    stats_interval_s: float,
    close_timeout_s: float,
    nice: int = 0,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    problem = own_scheduling_group(nice)
    from telepresence import media_worker  # the slow imports

    note = None if problem is None else f"its CPU group keeps niceness 0 ({problem})"
    media_worker.run(sock, name, log_level, stats_interval_s, close_timeout_s, startup_note=note)


def own_scheduling_group(nice: int) -> str | None:
    """Where CPU time is shared by session first, make this process a session of its own whose
    group has niceness ``nice``; None when done or not needed, else what stood in the way."""
    if nice >= 0:
        return None
    try:
        with open(AUTOGROUP_SWITCH) as switch:
            if switch.read().strip() != "1":
                return None
    except OSError:
        return None  # a kernel without autogroup: niceness works across the machine
    try:
        os.setsid()
    except OSError as exc:
        return str(exc)
    # Without CAP_SYS_ADMIN the kernel takes one such write a tenth of a second, machine-wide
    # (EAGAIN meanwhile): workers started together take turns.
    for _ in range(AUTOGROUP_TRIES):
        try:
            with open("/proc/self/autogroup", "w") as group:
                group.write(str(nice))
            return None
        except BlockingIOError:
            time.sleep(AUTOGROUP_RETRY_S)
        except OSError as exc:  # no CAP_SYS_NICE
            return str(exc)
    return f"the kernel kept refusing to set it for {AUTOGROUP_TRIES * AUTOGROUP_RETRY_S:.0f} s"
