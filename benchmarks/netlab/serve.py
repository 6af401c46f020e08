"""``telepresence serve`` in a lab's server namespace, as the tests and the network suite run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks.netlab.namespaces import Lab

ROOT = Path(__file__).resolve().parents[2]
PORT = 8080


def start_serve(
    lab: Lab, state_dir: Path, secret: str, *, log_level: str = "info", **settings: object
) -> tuple[subprocess.Popen[bytes], Path]:
    """The server process (media in the process, admission off) and its log file, on the
    server's address and :data:`PORT`; ``settings`` are TELEPRESENCE_* settings by name."""
    env = {
        **os.environ,
        "TELEPRESENCE_SECRET": secret,
        "TELEPRESENCE_STATE_DIR": str(state_dir),
        "TELEPRESENCE_MEDIA_WORKERS": "0",
        "TELEPRESENCE_CPU_BUDGET_PCT": "100",
        **{f"TELEPRESENCE_{name.upper()}": str(value) for name, value in settings.items()},
    }
    argv = [
        sys.executable,
        "-m",
        "telepresence",
        "serve",
        "--host",
        lab.address("server"),
        "--port",
        str(PORT),
    ]
    log = state_dir / "serve.log"
    with log.open("ab") as out:
        process = lab.popen(
            "server",
            [*argv, "--log-level", log_level],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, log
