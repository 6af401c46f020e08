"""Media worker processes: real uvicorn servers, real worker processes, real aiortc peers.

A call's media lives in one worker; calls spread over the workers; a worker killed with
SIGKILL ends only its own call (its customer back at the head of the queue) while the
other call's media flows on and a new worker takes its place; serving stops with no
worker left behind; each live call's CPU share is in /metrics and in its receipt.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import pytest
import websockets

from media.browser import BrowserPeer, ToneTrack
from media.layout import AGENT, SCREEN, compute_layout
from media.planes import frame_planes
from media.sources import ScreenTrack, TestCardTrack
from telepresence.metrics import Metrics
from telepresence.shedding import SHED_STEPS
from telepresence.worker_pool import WorkerPool
from telepresence.worker_room import WorkerRoom
from tests.calls.test_media_calls import SIZE, media_server, open_call, red_band, signalling, wait_for
from tests.conftest import Client, free_port

FULL = compute_layout(SIZE, "agent", {AGENT})[0].content
RED = (200, 0, 0)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def children(pid: int) -> list[int]:
    """Every process whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


@contextlib.asynccontextmanager
async def call_with_media(server, name: str):
    """A call with an agent sending a red test card and a customer receiving the composite."""
    agent_ws, customer_ws, call_id = await open_call(server, name)
    agent = BrowserPeer.agent(camera=TestCardTrack(640, 360, fps=30, label="", tint=RED), mic=ToneTrack(440))
    customer = BrowserPeer.customer(mic=ToneTrack(880))
    async with agent, customer:
        await agent.negotiate(signalling(agent_ws))
        await customer.negotiate(signalling(customer_ws))
        await customer.video(0).wait(20)
        await wait_for(lambda: red_band(customer.video(0).latest, FULL), timeout=20)
        yield agent_ws, customer_ws, call_id, customer


async def test_calls_spread_over_workers_and_a_killed_worker_ends_only_its_call(tmp_path):
    async with media_server(tmp_path, media_workers=2, receipt_interval_s=1.0) as server:
        pool = server.switchboard.media.pool
        pids = {name: worker.pid for name, worker in pool.workers.items()}
        assert len(pids) == 2 and os.getpid() not in pids.values()
        # Both ready (imported everything): a worker still starting takes calls only if none is.
        await wait_for(lambda: all(w.ready for w in pool.workers.values()), timeout=60)
        async with (
            call_with_media(server, "Ann") as (ann_agent, ann_ws, ann_call, _),
            call_with_media(server, "Bob") as (_, bob_ws, bob_call, bob),
        ):
            ann_room = server.switchboard.calls[ann_call].room
            bob_room = server.switchboard.calls[bob_call].room
            assert isinstance(ann_room, WorkerRoom) and isinstance(bob_room, WorkerRoom)
            assert ann_room.worker != bob_room.worker  # the least-loaded worker takes the next call

            # Per-call CPU while media flows: in /metrics (per call and per worker) and in the receipt.
            async with httpx.AsyncClient(base_url=server.url) as http:
                deadline = time.monotonic() + 15
                while True:
                    text = (await http.get("/metrics")).text
                    cpus = [
                        metric(text, "telepresence_live_call_cpu_pct", call=c) for c in (ann_call, bob_call)
                    ]
                    if all(cpu is not None and cpu > 0 for cpu in cpus) or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.5)
            print(f"\nper-call CPU (% of one core, 360p, loopback): {cpus}")
            assert all(cpu is not None and cpu > 0 for cpu in cpus), text
            for name in pids:
                assert (metric(text, "telepresence_media_worker_cpu_pct", worker=name) or 0) > 0
                assert metric(text, "telepresence_media_worker_rooms", worker=name) == 1
            receipt = await ann_agent.expect("receipt", timeout=10)
            while receipt.get("cpu_pct") is None:
                receipt = await ann_agent.expect("receipt", timeout=10)
            assert receipt["cpu_pct"] > 0 and receipt["stages"]["compose"]["p50"] > 0
            # Ann's camera is the picture as it came: her console is told to show it itself (the
            # worker holds the preview stream), by an event from the worker.
            assert await ann_agent.expect("preview", timeout=10, call_id=ann_call, source="own_camera")

            # Ann's agent steps away (her call carries on); a third customer waits behind her.
            await ann_agent.send("set_status", status="away")
            cy = Client(await websockets.connect(server.ws_url), "Cy")
            await cy.send("join", name="Cy")
            assert (await cy.expect("queue_status"))["position"] == 1

            os.kill(pids[ann_room.worker], signal.SIGKILL)
            ended = await ann_ws.expect("call_ended", timeout=10)
            assert ended["reason"] == "agent_left" and ended["requeued"] is True
            assert (await ann_ws.expect("queue_status", timeout=5))["position"] == 1
            assert (await cy.expect("queue_status", timeout=5))["position"] == 2
            assert (await ann_agent.expect("call_ended"))["call_id"] == ann_call

            # Bob's call is untouched: live, and his picture keeps coming.
            assert server.switchboard.calls[bob_call].active
            seen = bob.video(0).count
            await wait_for(lambda: bob.video(0).count > seen + 30 and red_band(bob.video(0).latest, FULL))
            assert not [m for m in bob_ws.received if m["type"] == "call_ended"]

            # A new worker takes the dead one's place, and takes calls.
            replaced = pool.workers[ann_room.worker]
            await wait_for(lambda: replaced.alive and replaced.pid != pids[ann_room.worker], timeout=20)
            assert not alive(pids[ann_room.worker])  # reaped, not a zombie
            await cy.close()
        live = [w.pid for w in pool.workers.values()]
    # The server's shutdown stopped every worker.
    assert live and not [pid for pid in live if alive(pid)]


async def test_a_stuck_worker_is_killed_and_replaced_and_its_call_requeued(tmp_path):
    async with media_server(tmp_path, media_workers=1) as server:
        pool = server.switchboard.media.pool
        async with call_with_media(server, "Fay") as (_, customer_ws, _, _):
            pool.silent_s = 1.5  # the watchdog's allowance (15 s by default)
            pid = pool.workers["media-0"].pid
            os.kill(pid, signal.SIGSTOP)  # alive, but its event loop serves nobody
            ended = await customer_ws.expect("call_ended", timeout=15)
            assert ended["reason"] == "agent_left" and ended["requeued"] is True
            await wait_for(lambda: pool.workers["media-0"].alive and pool.workers["media-0"].pid != pid, 20)
            assert not alive(pid)


@pytest.mark.skipif(os.geteuid() != 0, reason="raising a process's priority needs root (CAP_SYS_NICE)")
async def test_workers_run_at_the_priority_set_and_a_replacement_too():
    pool = WorkerPool(1, Metrics(), nice=-3)
    await pool.start()
    try:
        first = pool.workers["media-0"]
        assert os.getpriority(os.PRIO_PROCESS, first.pid) == -3
        await wait_for(lambda: first.ready, timeout=60)
        if autogroups_on():  # niceness ranks only within a session there: the worker has its own
            assert os.getsid(first.pid) == first.pid != os.getsid(0)
            assert autogroup_nice(first.pid) == "-3"
        os.kill(first.pid, signal.SIGKILL)
        await wait_for(
            lambda: pool.workers["media-0"] is not first and pool.workers["media-0"].alive, timeout=20
        )
        assert os.getpriority(os.PRIO_PROCESS, pool.workers["media-0"].pid) == -3
    finally:
        await pool.stop()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_a_worker_that_may_not_raise_its_groups_priority_says_why():
    if not autogroups_on():
        pytest.skip("this kernel does not group CPU time by session")
    script = (
        "import os; from telepresence.worker_main import own_scheduling_group; "
        "print(own_scheduling_group(-5)); print(os.getsid(0) == os.getpid())"
    )
    without_nice = ["setpriv", "--bounding-set", "-sys_nice,-sys_admin", "--inh-caps", "-sys_nice,-sys_admin"]
    command = [*without_nice, sys.executable, "-c", script]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    problem, own_session = done.stdout.splitlines()
    assert "not permitted" in problem and own_session == "True"


def autogroups_on() -> bool:
    path = Path("/proc/sys/kernel/sched_autogroup_enabled")
    return path.exists() and path.read_text().strip() == "1"


def autogroup_nice(pid: int) -> str:
    return Path(f"/proc/{pid}/autogroup").read_text().split()[-1]  # "/autogroup-N nice K"


async def test_a_worker_that_dies_before_serving_is_restarted_after_a_growing_wait():
    pool = WorkerPool(1, Metrics())
    await pool.start()
    pids = []
    try:
        for wait_s in (1.0, 2.0):
            dying = pool.workers["media-0"]
            pids.append(dying.pid)
            os.kill(dying.pid, signal.SIGKILL)  # long before it has imported what it needs
            killed_at = time.monotonic()
            await wait_for(lambda d=dying: pool.workers["media-0"] is not d, timeout=20)
            assert time.monotonic() - killed_at >= wait_s
            await wait_for(lambda: pool.workers["media-0"].alive, timeout=20)  # started: it has a pid
        await wait_for(lambda: pool.workers["media-0"].ready, timeout=60)  # and in the end it serves
        pids.append(pool.workers["media-0"].pid)
    finally:
        await pool.stop()
    assert not [pid for pid in pids if alive(pid)]


async def test_calls_in_the_control_process_report_their_cpu_too(tmp_path):
    async with media_server(tmp_path) as server:  # media_workers=0: the test helpers' default
        assert server.switchboard.media.pool is None
        async with call_with_media(server, "Eve") as (agent_ws, _, call_id, _):
            async with httpx.AsyncClient(base_url=server.url) as http:
                await asyncio.sleep(1.1)  # one sampling interval
                text = (await http.get("/metrics")).text
            assert (metric(text, "telepresence_live_call_cpu_pct", call=call_id, worker="control") or 0) > 0
            assert metric(text, "telepresence_media_worker_rooms", worker="control") == 1
            receipt = await agent_ws.expect("receipt", timeout=10)
            while receipt["cpu_pct"] is None:  # the first receipt may come before a CPU sample
                receipt = await agent_ws.expect("receipt", timeout=10)
            assert receipt["cpu_pct"] > 0
            await agent_ws.send("end_call")
            await agent_ws.expect("call_ended")
        async with httpx.AsyncClient(base_url=server.url) as http:
            text = (await http.get("/metrics")).text
        assert metric(text, "telepresence_live_call_cpu_pct", call=call_id) is None  # ended: no series


async def test_an_offer_is_answered_in_a_worker_when_the_call_starts_on_it(tmp_path):
    """One worker: the room is made there on the first offer; closing the call closes it there."""
    async with media_server(tmp_path, media_workers=1) as server:
        pool = server.switchboard.media.pool
        async with call_with_media(server, "Dee") as (agent_ws, customer_ws, call_id, _):
            room = server.switchboard.calls[call_id].room
            assert isinstance(room, WorkerRoom) and room.room_id in pool.rooms
            await agent_ws.send("end_call")
            assert (await customer_ws.expect("call_ended", timeout=10))["reason"] == "agent_hung_up"
            await wait_for(lambda: room.room_id not in pool.rooms and not pool.workers["media-0"].rooms)


async def test_a_waiting_customers_greeter_runs_in_a_worker_and_the_call_grows_there(tmp_path):
    async with media_server(tmp_path, media_workers=1, greeter_look="aurora") as server:
        ann = Client(await websockets.connect(server.ws_url), "Ann")
        await ann.send("join", name="Ann")
        assert (await ann.expect("welcome"))["greeter"] is True
        customer = BrowserPeer.customer()
        async with customer:
            await customer.negotiate(signalling(ann))
            assert (await ann.expect("layout"))["layout"] == "avatar"
            await customer.video(0).wait(15)
            lobby = next(iter(server.switchboard.customers.values())).lobby
            assert isinstance(lobby.room, WorkerRoom) and lobby.room.greeting
            room = lobby.room

            agent_ws = Client(await websockets.connect(server.ws_url), "sam")
            await agent_ws.send("login", token=server.token("sam"))
            await agent_ws.expect("logged_in")
            await agent_ws.send("auto_answer", enabled=True)
            await agent_ws.send("set_status", status="available")
            call_id = (await ann.expect("call_started"))["call_id"]
            assert server.switchboard.calls[call_id].room is room  # the same room, in the same worker
            agent = BrowserPeer.agent(camera=TestCardTrack(640, 360, fps=30, label="", tint=RED))
            async with agent:
                await agent.negotiate(signalling(agent_ws))
                await ann.expect("layout", layout="agent", timeout=15)
                await wait_for(lambda: red_band(customer.video(0).latest, FULL), timeout=20)
            assert len([m for m in ann.received if m["type"] == "webrtc_answer"]) == 1
            await agent_ws.close()
        await ann.close()


def _serve(tmp_path: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TELEPRESENCE_STATE_DIR": str(tmp_path), "TELEPRESENCE_SECRET": "s" * 32}
    with (tmp_path / "serve.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "telepresence", "serve", "--port", str(port), "--log-level", "warning",
             "--media-workers", str(workers)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,  # its own process group, as a service manager runs it
        )  # fmt: skip


async def _workers_of(server: subprocess.Popen[bytes], port: int, count: int) -> list[int]:
    """Wait until the server answers and has ``count`` children besides multiprocessing's tracker."""
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as http:
        while True:
            assert server.poll() is None and time.monotonic() < deadline
            with contextlib.suppress(httpx.HTTPError):
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                if len(re.findall(r'^telepresence_media_worker_cpu_pct\{worker="media', text, re.M)) == count:
                    return children(server.pid)
            await asyncio.sleep(0.2)


async def test_serve_uses_workers_and_leaves_none_behind(tmp_path):
    # Stopped as a service manager stops it, SIGTERM to its whole process group: the workers
    # wait for the server, which stops them once its calls are closed.
    port = free_port()
    server = _serve(tmp_path, port, 2)
    try:
        kids = await _workers_of(server, port, 2)
        assert len(kids) >= 2
        os.killpg(server.pid, signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert await asyncio.to_thread(server.wait, 20) in (0, -signal.SIGTERM)
        assert "died" not in (tmp_path / "serve.log").read_text()  # no worker fell to the SIGTERM
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    await wait_for(lambda: not [pid for pid in kids if alive(pid)], timeout=10)

    # Killed outright: each worker sees its socket close and exits on its own.
    port = free_port()
    server = _serve(tmp_path, port, 1)
    try:
        kids = await _workers_of(server, port, 1)
        server.kill()
        server.wait()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    await wait_for(lambda: not [pid for pid in kids if alive(pid)], timeout=15)


def screen_changes(frames: list, pip) -> int:
    """Composites whose screen tile (the agent's picture-in-picture left out) moved from the one
    before: the shared screen's pointer moves with every frame its sender sends."""
    changes = 0
    for before, after in itertools.pairwise(frames):
        diff = cv2.absdiff(frame_planes(before)[0], frame_planes(after)[0])
        diff[pip.y : pip.bottom, pip.x : pip.right] = 0
        changes += int(diff.max() > 80)
    return changes


async def test_a_shed_step_reaches_the_room_in_its_worker_and_a_new_room_starts_with_it(tmp_path):
    # Any machine is busier than 0.01 %: running calls shed, a step per 5 s, down to the last (and
    # stay there). Admission is off (budget 100), so the second call starts whatever the CPU.
    last = SHED_STEPS[-1]
    async with media_server(tmp_path, media_workers=1, cpu_shed_pct=0.01, cpu_budget_pct=100) as server:
        agent_ws, customer_ws, call_id = await open_call(server, "Gil")
        # This agent's "browser" ignores sender_limits: it sends its screen at 30 fps whatever.
        camera = TestCardTrack(320, 180, fps=30, label="", tint=RED)
        agent = BrowserPeer.agent(camera=camera, screen=ScreenTrack(640, 360, fps=30))
        customer = BrowserPeer.customer()
        async with agent, customer:
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            await customer.video(0).wait(20)
            await agent_ws.send("screen_share", active=True)
            await customer_ws.expect("layout", layout="screen", timeout=10)
            room = server.switchboard.calls[call_id].room
            assert isinstance(room, WorkerRoom)
            await agent_ws.expect("sender_limits", call_id=call_id, timeout=20)
            # The worker's room enforces the step too: 5 fps, half the detail.
            await wait_for(lambda: room.screen_limits == (last.screen_fps, last.screen_scale), timeout=40)
            assert server.switchboard.admission.shedding == last

            frames, start = [], time.monotonic()
            while time.monotonic() - start < 3.0:
                seen = customer.video(0).count
                await wait_for(lambda seen=seen: customer.video(0).count > seen, timeout=5)
                frames.append(customer.video(0).latest)
            tiles = {t.name: t.cell for t in compute_layout(SIZE, "screen", {AGENT, SCREEN})}
            changes = screen_changes(frames, tiles[AGENT]) / 3.0
            print(f"\ncomposites {len(frames) / 3:.1f}/s, screen tile changes {changes:.1f}/s (sent: 30/s)")
            assert len(frames) >= 30  # the composite keeps flowing at the camera's pace
            assert 1 <= changes <= 8
        await agent_ws.send("end_call")
        await agent_ws.expect("call_ended")
        await agent_ws.close()  # Gil's agent goes: the next customer is Hal's agent's
        await customer_ws.close()

        async with call_with_media(server, "Hal") as (_, _, call_id, _):
            room = server.switchboard.calls[call_id].room
            assert isinstance(room, WorkerRoom)
            await wait_for(lambda: room.screen_limits is not None, timeout=5)
            assert room.screen_limits == (last.screen_fps, last.screen_scale)  # from its creation on
