"""A media worker process's first code: its signals, before the slow imports.

The "spawn" start method imports only this small module to start a worker, so the
worker ignores SIGINT and SIGTERM within moments of starting rather than after its
seconds of importing aiortc, PyAV and numpy: Ctrl-C reaches the whole process group,
and a service manager's SIGTERM often does too. The control process decides when
workers stop (it closes their calls first), and a worker whose control process is gone
sees its socket close and exits (telepresence.media_worker).
"""

from __future__ import annotations

import signal
import socket


def main(
    sock: socket.socket, name: str, log_level: str, stats_interval_s: float, close_timeout_s: float
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from telepresence import media_worker  # the slow imports

    media_worker.run(sock, name, log_level, stats_interval_s, close_timeout_s)
