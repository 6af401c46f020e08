"""The capacity suite's processes: a real ``telepresence serve``, client processes, and their CPU.

CPU is read from ``/proc``: a process tree's time is the sum of ``utime + stime + cutime +
cstime`` over the root and every live descendant (a descendant that ended and was reaped
has its time in its parent's ``cutime``/``cstime``, so nothing is lost or counted twice),
so media worker processes the server starts are included.

Every process here is started in a session of its own (a Ctrl-C at the terminal reaches the
driver only, which then stops them in order) and is stopped and awaited on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int, reaped: bool = True) -> tuple[int, int] | None:
    """(parent pid, CPU ticks, with its reaped children's unless not ``reaped``) of a process,
    or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces
    return int(fields[1]), sum(int(f) for f in fields[11 : 15 if reaped else 13])


def tree_ticks(root: int, reaped: bool = True) -> dict[int, int]:
    """CPU ticks of ``root`` and each of its live descendants, by pid (per-pid deltas over a
    window want ``reaped=False``: a child reaped in it would add its whole life at once)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry), reaped)) is not None:
            parents[int(entry)], ticks[int(entry)] = stat
    tree = {root} if root in ticks else set()
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return {pid: ticks[pid] for pid in tree}


@dataclass
class CpuMeter:
    """CPU of process trees between two readings, as % of one core; and per second, for peaks."""

    roots: list[int]
    _last: dict[int, int] = field(default_factory=dict)
    _at: float = 0.0
    seconds: list[float] = field(default_factory=list)  # % of one core in each 1 s sample
    busy: dict[int, int] = field(default_factory=dict)  # ticks per pid over the window

    def _read(self) -> dict[int, int]:
        total: dict[int, int] = {}
        for root in self.roots:
            total.update(tree_ticks(root))
        return total

    def start(self) -> None:
        self._last, self._at = self._read(), time.monotonic()
        self.seconds, self.busy = [], {}

    def sample(self) -> float:
        """% of one core since the last sample (pids new since then count from zero)."""
        now, current = time.monotonic(), self._read()
        used = 0
        for pid, ticks in current.items():
            delta = max(0, ticks - self._last.get(pid, 0))
            self.busy[pid] = self.busy.get(pid, 0) + delta
            used += delta
        pct = 100.0 * used / TICKS / max(1e-6, now - self._at)
        self._last, self._at = current, now
        self.seconds.append(pct)
        return pct


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine, all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already in user
    return total - idle, total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _stop(process: asyncio.subprocess.Process, first: int, grace: float, exiting: float = 0) -> None:
    """Wait ``exiting`` s for a process on its way out, signal, wait, kill; then kill what is left
    of its session (it has one of its own).

    ``os.kill``, not ``Process.send_signal``: the latter polls (``waitpid``) first and may reap
    the child under asyncio's child watcher, which then reports it as unknown.
    """
    for sig, wait in ((None, exiting), (first, grace), (signal.SIGKILL, None)):
        if process.returncode is not None:
            break
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, sig)
        try:
            await asyncio.wait_for(process.wait(), wait)
        except TimeoutError:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # children it left behind (its session's group)


class Server:
    """``telepresence serve`` on a free loopback port, settings through TELEPRESENCE_* env vars."""

    def __init__(self, workdir: Path, secret: str, **settings: Any) -> None:
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/ws"
        self.log = workdir / f"server-{self.port}.log"
        self.env = {**os.environ, "TELEPRESENCE_SECRET": secret, "TELEPRESENCE_STATE_DIR": str(workdir)}
        self.env.update({f"TELEPRESENCE_{k.upper()}": str(v) for k, v in settings.items()})
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Server:
        args = ["-m", "telepresence", "serve", "--port", str(self.port), "--log-level", "warning"]
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, *args, env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"the server exited ({self.process.returncode}): {self.tail()}")
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    writer.close()
                    await writer.wait_closed()
                    return self
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not listen within 30 s: {self.tail()}")
                await asyncio.sleep(0.1)
        except BaseException:
            await self.stop()
            raise

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def stop(self) -> None:
        if self.process is not None:
            await _stop(self.process, signal.SIGINT, 15)

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class ClientProcess:
    """One ``benchmarks.capacity_clients`` process: JSON commands in, JSON replies out."""

    def __init__(self, index: int, video_loop: Path, opus_loop: Path) -> None:
        self.index = index
        self.args = [sys.executable, "-m", "benchmarks.capacity_clients", str(video_loop), str(opus_loop)]
        self.process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            start_new_session=True, limit=16 * 1024 * 1024,
        )  # fmt: skip

    async def ask(self, timeout: float = 60, **command: Any) -> dict[str, Any]:
        assert self.process is not None and self.process.stdin and self.process.stdout
        async with self._lock:
            self.process.stdin.write((json.dumps(command) + "\n").encode())
            await self.process.stdin.drain()
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"client process {self.index} exited ({self.process.returncode})")
        return json.loads(line)

    async def stop(self) -> None:
        if self.process is None:
            return
        if self.process.returncode is None and self.process.stdin is not None:
            with contextlib.suppress(Exception):
                self.process.stdin.write(b'{"cmd": "close"}\n')
                await self.process.stdin.drain()
                self.process.stdin.close()
            # Closing the calls: replies to read (an unread pipe would block the child).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.process.stdout.read(), 30)  # type: ignore[union-attr]
        await _stop(self.process, signal.SIGTERM, 10, exiting=10)
