"""A real coturn ``turnserver`` for tests: loopback, its own ports, TURN REST API credentials.

It runs the way deployments run it (``use-auth-secret`` + ``static-auth-secret``, the scheme
telepresence/turn.py mints for), listening on 127.0.0.1 for TURN over UDP and TCP, relaying
from 127.0.0.1 (``allow-loopback-peers``: the peers of a test are on loopback too). No TLS,
no CLI, no database: everything it needs is in a config file of its own directory.

    server = TurnServer(tmp_path, secret="s3cret")
    server.start()
    ... server.url("udp") -> "turn:127.0.0.1:PORT?transport=udp"
    server.stop()

``prefix`` runs it (and the readiness probe) under a command, e.g. ``["ip", "netns", "exec", NS]``
for coturn inside a network namespace of benchmarks/netlab, on that namespace's address.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

TURNSERVER = shutil.which("turnserver")


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (TURN listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(port)
    raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")


def free_udp_range(size: int = 64) -> tuple[int, int]:
    """``size`` consecutive UDP ports free now on 127.0.0.1 (for coturn's relay ports)."""
    for start in range(50000, 60000 - size, size):
        sockets: list[socket.socket] = []
        try:
            for port in range(start, start + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return start, start + size - 1
    raise RuntimeError("no free UDP port range for coturn's relays")


class TurnServer:
    """One ``turnserver`` process at a time on ``port`` (UDP and TCP), its files in ``directory``."""

    def __init__(
        self,
        directory: Path,
        *,
        secret: str,
        realm: str = "telepresence.test",
        port: int | None = None,
        relay_ports: tuple[int, int] | None = None,
        listening_ip: str = "127.0.0.1",
        relay_ip: str = "127.0.0.1",
        extra: tuple[str, ...] = (),
        start_timeout_s: float = 10.0,
        prefix: Sequence[str] = (),
    ) -> None:
        if TURNSERVER is None:
            raise RuntimeError("turnserver is not installed (Debian: apt-get install coturn)")
        self.directory = directory
        self.secret = secret
        self.realm = realm
        self.port = port or free_port()
        self.relay_ports = relay_ports or free_udp_range()
        self.listening_ip = listening_ip
        self.relay_ip = relay_ip
        self.extra = extra
        self.prefix = tuple(prefix)
        self.config = directory / "turnserver.conf"
        self.log = directory / "turnserver.log"
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, transport: str = "udp") -> str:
        """This server's TURN URL for ``transport`` ("udp" or "tcp")."""
        return f"turn:{self.listening_ip}:{self.port}?transport={transport}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def write_config(self) -> Path:
        lines = [
            f"listening-ip={self.listening_ip}",
            f"relay-ip={self.relay_ip}",
            f"listening-port={self.port}",
            f"min-port={self.relay_ports[0]}",
            f"max-port={self.relay_ports[1]}",
            "use-auth-secret",
            f"static-auth-secret={self.secret}",
            f"realm={self.realm}",
            "fingerprint",
            "no-tls",
            "no-dtls",
            "no-cli",
            "no-multicast-peers",
            "allow-loopback-peers",
            "no-software-attribute",
            f"pidfile={self.directory / 'turnserver.pid'}",
            f"userdb={self.directory / 'turndb'}",  # not the system's /var/lib/turn/turndb
            f"log-file={self.log}",
            "simple-log",
            "verbose",
            *self.extra,
        ]
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config.write_text("\n".join(lines) + "\n")
        self.config.chmod(0o600)  # it holds the secret
        return self.config

    def start(self) -> None:
        """Start it, then wait until it accepts TCP on its port (it listens on UDP by then too)."""
        if self.running:
            return
        self.write_config()
        self._process = subprocess.Popen(
            [*self.prefix, str(TURNSERVER), "-c", str(self.config), "--no-stdout-log"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )
        deadline = time.monotonic() + self._start_timeout_s
        while not self._accepts():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"turnserver on port {self.port} did not start:\n{self.log_tail()}")
            time.sleep(0.02)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def __enter__(self) -> TurnServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accepts(self) -> bool:
        if self.prefix:  # somewhere this process cannot connect to: probe from there
            probe = f"exec 3<>/dev/tcp/{self.listening_ip}/{self.port}"
            try:
                done = subprocess.run([*self.prefix, "bash", "-c", probe], capture_output=True, timeout=2)
            except subprocess.TimeoutExpired:
                return False
            return done.returncode == 0
        try:
            with socket.create_connection((self.listening_ip, self.port), timeout=0.5):
                return True
        except OSError:
            return False
