"""The fan-out suite's server: the app, in a process of its own, with the avatar host live.

    python -m benchmarks.fanout_server PORT HOST_JANUS_RTP STATE_DIR

serves the app on 127.0.0.1:PORT (as ``telepresence serve`` does: uvicorn, one process, no
media workers: the host's program is encoded in this process whatever the setting), starts
the avatar host through the HTTP control API with an operator token, asks its avatar to
stamp each frame with its render time (:mod:`media.stamp`: the viewers read glass-to-glass
from it), prints one JSON line (``{"ready": true}``) and serves until stdin closes or SIGTERM.
The suite measures this process's CPU from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import sys
import time
from pathlib import Path

import httpx
import uvicorn

from telepresence.app import create_app
from telepresence.auth import Claims
from telepresence.config import Settings

LOOK = "aurora"


async def serve(port: int, janus_rtp: str, state_dir: Path) -> None:
    settings = Settings.load(
        env={},
        port=port,
        state_dir=state_dir,
        secret=secrets.token_hex(16),
        log_level="warning",
        host_janus_rtp=janus_rtp,
        cpu_budget_pct=100.0,  # admission is not what is measured
        media_door_anonymous_max=200,
        media_door_sessions_max=200,
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    operator = app.state.authority.mint(Claims(name="bench", role="operator", expires_at=time.time() + 86400))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        response = await http.post(
            "/api/host",
            headers={"Authorization": f"Bearer {operator}"},
            json={"type": "host_start", "spec": LOOK},
        )
    if response.status_code != 200:
        raise RuntimeError(f"host_start: {response.status_code} {response.text}")
    host = app.state.switchboard.host_control.desk.host
    host.track.stamp = "render"  # every frame carries its render time, for the viewers to read
    print(json.dumps({"ready": True, "host": host.id}), flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.buffer.read1(1) else None)
    waiting = asyncio.create_task(stop.wait())
    await asyncio.wait({waiting, task}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    server.should_exit = True
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 15)


def main() -> None:
    port, janus_rtp, state_dir = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    asyncio.run(serve(port, janus_rtp, state_dir))


if __name__ == "__main__":
    main()
