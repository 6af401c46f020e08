"""Real ``telepresence serve --redis`` processes on loopback, for the tests of a centre of many."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import TEST_SECRET, free_port


class ServeProcess:
    """One ``telepresence serve`` process of the centre (``.url``, ``.ws_url``, ``.node``)."""

    def __init__(self, redis_url: str, state_dir: Path, **settings: object) -> None:
        self.port = free_port()
        self.node = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.node}"
        self.ws_url = f"ws://{self.node}/ws"
        self._redis_url = redis_url
        self._state_dir = state_dir
        self._settings = settings
        self._log = state_dir / f"serve-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> ServeProcess:  # a busy machine imports slowly
        env = {
            **os.environ,
            "TELEPRESENCE_SECRET": TEST_SECRET,
            "TELEPRESENCE_STATE_DIR": str(self._state_dir),
            "TELEPRESENCE_MEDIA_WORKERS": "0",
            "TELEPRESENCE_CPU_BUDGET_PCT": "100",
            **{f"TELEPRESENCE_{k.upper()}": str(v) for k, v in self._settings.items()},
        }
        command = [
            sys.executable,
            "-m",
            "telepresence",
            "serve",
            "--port",
            str(self.port),
            "--redis",
            self._redis_url,
        ]
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AssertionError(f"serve on {self.port} exited {self._process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"serve on {self.port} did not start:\n{self.log()}")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log(self) -> str:
        return self._log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """``kill -9``: no goodbye to anyone."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(10)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def healthy(self) -> bool:
        return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=3).text

    def status(self) -> dict:
        return httpx.get(f"{self.url}/api/status", timeout=3).json()
