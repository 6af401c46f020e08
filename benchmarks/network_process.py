"""One side of a benchmark call as seen from the suite: a benchmarks.network_peer process in a
namespace of the lab, its JSON events read on a thread of its own and waited for by name."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.netlab import Lab
from benchmarks.netlab.serve import PORT

ROOT = Path(__file__).resolve().parents[1]


class PeerProcess:
    """A benchmarks.network_peer process in a namespace: its JSON events through a queue."""

    def __init__(self, lab: Lab, role: str, args: list[str], logdir: Path) -> None:
        self.role = role
        self.stderr_path = logdir / f"{role}-{time.time_ns()}.log"
        base = f"http://{lab.address('server')}:{PORT}"
        argv = [sys.executable, "-m", "benchmarks.network_peer", role, base, *args]
        with self.stderr_path.open("wb") as err:
            self.process = lab.popen(role, argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, name=f"{role} events", daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.events.put(json.loads(line))
            except json.JSONDecodeError:
                continue  # a stray print from a library: not an event
        self.events.put(None)

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"{self.role}: no {event} within {timeout:.0f} s") from None
            if got is None:
                raise RuntimeError(
                    f"{self.role} exited ({self.process.wait()}) before {event}: {self.tail()}"
                )
            if got["event"] == "error":
                raise RuntimeError(f"{self.role}: {got['error']} {self.tail()}")
            if got["event"] == event:
                return got

    def tail(self, chars: int = 1500) -> str:
        return self.stderr_path.read_text(errors="replace")[-chars:]
