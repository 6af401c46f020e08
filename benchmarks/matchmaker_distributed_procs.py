"""Suite "matchmaker", distributed run: one ``redis-server`` and ``telepresence serve --redis`` processes.

What the tests do with ``tests/redis_server.py`` and ``tests/centre/processes.py``, in the few
lines a benchmark needs (benchmarks ship; tests do not).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SECRET = "bench-secret-0123456789abcdef"
# Long graces and offers: nothing times out or expires during a run (every socket stays open).
SETTINGS = {
    "media_workers": 0,
    "cpu_budget_pct": 100,  # admission off: the run measures routing, not the CPU guard
    "rejoin_grace_s": 3600,
    "agent_grace_s": 3600,
    "offer_timeout_s": 600,
    "wrap_up_s": 0,
    "log_level": "warning",
}
# TP_BENCH_PROFILE=DIR: each serve process runs under cProfile and writes DIR/serve-PORT.prof
# when it is stopped (SIGINT, then uvicorn's shutdown); read the leader's with pstats.
PROFILE_DIR = os.environ.get("TP_BENCH_PROFILE", "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int, probe: bytes, expect: bytes) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(probe)
            return sock.recv(64).startswith(expect)
    except OSError:
        return False


def _wait(
    process: subprocess.Popen[bytes], port: int, probe: bytes, expect: bytes, what: str, log: Path
) -> None:
    deadline = time.monotonic() + 30
    while not _answers(port, probe, expect):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
            raise RuntimeError(f"{what} on port {port} did not start:\n{tail}")
        time.sleep(0.05)


class Processes:
    """One Redis (append-only, as docs/scale-out.md recommends) and ``count`` serve processes."""

    def __init__(self, count: int, directory: Path, **settings: object) -> None:
        self.directory = directory
        self.settings = {**SETTINGS, **settings}  # each a TELEPRESENCE_* variable of every process
        self.redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.ports = [free_port() for _ in range(count)]
        self.pids: list[int] = []
        self._children: list[subprocess.Popen[bytes]] = []

    @property
    def ws_urls(self) -> list[str]:
        return [f"ws://127.0.0.1:{port}/ws" for port in self.ports]

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
        redis_dir = self.directory / "redis"
        redis_dir.mkdir(parents=True)
        log = redis_dir / "redis.log"
        command = [
            server, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(redis_dir),
            "--logfile", str(log), "--daemonize", "no",
            # Redis takes the open-file limit it needs for these (up to the hard limit): a
            # door relays each socket's close on a connection of its own, so a shutdown of
            # thousands of sockets opens thousands at once.
            "--maxclients", "10000",
        ]  # fmt: skip
        redis = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self._children.append(redis)
        _wait(redis, self.redis_port, b"PING\r\n", b"+PONG", "redis-server", log)
        env = {
            **os.environ,
            "TELEPRESENCE_SECRET": SECRET,
            "TELEPRESENCE_STATE_DIR": str(self.directory / "state"),
            **{f"TELEPRESENCE_{k.upper()}": str(v) for k, v in self.settings.items()},
        }
        for port in self.ports:
            log = self.directory / f"serve-{port}.log"
            command = [sys.executable, "-m", "telepresence", "serve", "--port", str(port)]
            command += ["--redis", self.redis_url]
            if PROFILE_DIR:
                profile = Path(PROFILE_DIR).resolve() / f"serve-{port}.prof"
                command[1:1] = ["-m", "cProfile", "-o", str(profile)]
            with log.open("ab") as out:
                child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
            self._children.append(child)
            self.pids.append(child.pid)
        for child, port in zip(self._children[1:], self.ports, strict=True):
            log = self.directory / f"serve-{port}.log"
            _wait(child, port, b"GET /healthz HTTP/1.0\r\n\r\n", b"HTTP/1.1 200", "telepresence serve", log)

    def logs(self) -> str:
        """The tail of each serve process's log (what went wrong, when something did)."""
        tails = []
        for port in self.ports:
            with contextlib.suppress(OSError):
                text = (self.directory / f"serve-{port}.log").read_text(errors="replace")
                if text.strip():
                    tails.append(f"--- serve {port}\n{text[-1500:]}")
        return "\n".join(tails)

    def stop(self) -> None:
        """Serve processes killed first (their sockets' goodbyes are not measured), Redis last."""
        if PROFILE_DIR:  # a clean exit, so that cProfile writes its file (uvicorn re-raises a
            # SIGTERM after its shutdown, which would end the process first; SIGINT ends in an
            # exception that cProfile lets through after writing)
            for child in self._children[1:]:
                child.send_signal(signal.SIGINT)
            for child in self._children[1:]:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(180)  # closing 3,500 sockets each takes a while
        for child in reversed(self._children):
            if child.poll() is None:
                child.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(10)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far (/proc), seconds."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None
