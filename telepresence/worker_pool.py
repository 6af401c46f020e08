"""Media worker processes, seen from the control process: start, pick, replace, stop.

Workers own whole rooms (:mod:`telepresence.media_worker`): the control process keeps
every decision (queues, calls, layouts) and sends a room's worker small messages, and a
call's media never leaves its worker. A new room goes to the least-loaded live worker:
fewest rooms, then lowest CPU.

A worker that dies (a crash, ``kill -9``) is noticed by its socket closing: its pending
requests fail at once, each of its rooms is told it is lost (the call ends and the
customer is re-queued, see MediaControl), and a new worker takes its name (after a wait
that doubles, up to 30 s, while workers keep dying before they serve). Every task
here has an owner that cancels and awaits it; :meth:`WorkerPool.stop` leaves no process.
A worker that hangs (alive, but silent for :data:`SILENT_S` while it should report every
second) is killed, and then handled as one that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from telepresence import worker_main
from telepresence import worker_wire as wire
from telepresence.metrics import Metrics
from telepresence.worker_room import WorkerGone, WorkerRoom

logger = logging.getLogger(__name__)

STATS_INTERVAL_S = 1.0
SILENT_S = 15.0  # a worker reports every second; this long without a word, it is stuck
STARTING_S = 60.0  # a fresh interpreter importing aiortc, PyAV, numpy on a loaded machine
RESTART_BACKOFF_MAX_S = 30.0  # a worker that keeps dying before it serves: at most this between tries


_told_priority = False


def raise_priority(pid: int | None, nice: int) -> None:
    """Run a worker at niceness ``nice`` (below 0: ahead of other work on the machine, so a busy
    neighbour delays calls' packets less). Needs CAP_SYS_NICE (root); without it, said once."""
    global _told_priority
    if pid is None or nice == 0:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError as exc:
        if not _told_priority:
            _told_priority = True
            logger.info(
                "media workers keep the default priority (niceness %d needs CAP_SYS_NICE): %s", nice, exc
            )


class WorkerProcess:
    """One worker process and the socket to it."""

    def __init__(
        self,
        name: str,
        log_level: str,
        close_timeout_s: float,
        on_event: Callable[[WorkerProcess, wire.Message], None],
        on_exit: Callable[[WorkerProcess], None],
        nice: int = 0,
    ) -> None:
        self.name = name
        self.nice = nice
        self.rooms: set[str] = set()
        self.cpu_pct = 0.0
        self.pid: int | None = None
        self.alive = False
        self.last_heard = time.monotonic()
        self.ready = False  # said hello: it has imported everything and serves its socket
        self._log_level = log_level
        self._close_timeout_s = close_timeout_s
        self._on_event = on_event
        self._on_exit = on_exit
        self._process: Any = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[wire.Message]] = {}
        self._next_id = 0

    async def start(self) -> None:
        """Spawn the process (a fresh interpreter: no copy of this process's sockets or threads)."""
        ours, theirs = socket.socketpair()
        context = multiprocessing.get_context("spawn")
        self._process = context.Process(
            target=worker_main.main,
            args=(theirs, self.name, self._log_level, STATS_INTERVAL_S, self._close_timeout_s, self.nice),
            name=self.name,
            daemon=True,  # multiprocessing also ends it if this process exits without stop()
        )
        try:
            self._process.start()
        finally:
            theirs.close()  # the worker holds its end now; ours sees EOF when it exits
        reader, self._writer = await asyncio.open_connection(sock=ours)
        self.pid = self._process.pid
        raise_priority(self.pid, self.nice)
        self.alive = True
        self.last_heard = time.monotonic()
        self._reader_task = asyncio.create_task(self._read(reader), name=f"{self.name} reader")
        logger.info("%s started (pid %s)", self.name, self.pid)

    def send(self, message: wire.Message) -> None:
        if self.alive and self._writer is not None and not self._writer.is_closing():
            self._writer.write(wire.encode(message))

    async def request(self, message: wire.Message, timeout: float) -> wire.Message:
        """Send ``message`` and wait for its reply. Raises WorkerGone or TimeoutError."""
        if not self.alive:
            raise WorkerGone(self.name)
        self._next_id += 1
        request_id = self._next_id
        future: asyncio.Future[wire.Message] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self.send({**message, "id": request_id})
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while (message := await wire.read(reader)) is not None:
                self.last_heard = time.monotonic()
                request_id = message.get("id")
                if request_id is not None:
                    future = self._pending.get(request_id)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif message.get("event") == "stats":
                    self.cpu_pct = float(message.get("cpu_pct") or 0.0)
                    self._on_event(self, message)
                elif message.get("event") == "hello":
                    self.ready = True
                else:
                    self._on_event(self, message)
        except Exception:
            # A garbled stream is a broken worker: treat it as gone (it is killed in stop()).
            logger.exception("%s: bad message; giving the worker up", self.name)
        finally:
            self.alive = False
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(WorkerGone(self.name))
            self._on_exit(self)

    def silent_for(self, now: float, allowance: float) -> float:
        """How long past ``allowance`` the worker has been silent (> 0: it is stuck). A worker
        still starting (no hello yet) is allowed :data:`STARTING_S`."""
        return now - self.last_heard - (allowance if self.ready else STARTING_S)

    def kill(self) -> None:
        """Kill a stuck worker; its socket closes and it is handled as one that died."""
        if self._process is not None and self._process.is_alive():
            self._process.kill()

    async def stop(self, timeout: float) -> None:
        """Ask the worker to stop; kill it if it has not within ``timeout``. Safe to call twice."""
        self.send({"op": "stop"})
        if self._writer is not None:
            self._writer.close()
        if self._process is not None:
            if not await _exited(self._process, timeout):
                logger.warning("%s did not stop in %.0f s; killing it", self.name, timeout)
                self._process.kill()
                await _exited(self._process, timeout)  # SIGKILL: gone within moments
            # Its sentinel closes a moment before the kernel lets it be reaped: join, off the loop.
            await asyncio.to_thread(self._process.join, timeout)
            if self._process.exitcode is not None:
                self._process.close()
                self._process = None
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
            self._reader_task = None


class WorkerPool:
    """``count`` media worker processes, each owning whole rooms."""

    def __init__(
        self,
        count: int,
        metrics: Metrics,
        *,
        log_level: str = "info",
        stop_timeout_s: float = 5.0,
        answer_timeout_s: float = 30.0,
        nice: int = 0,
    ) -> None:
        self.metrics = metrics
        self._nice = nice
        self._log_level = log_level
        self._stop_timeout_s = stop_timeout_s
        self._answer_timeout_s = answer_timeout_s
        names = [f"media-{i}" for i in range(count)]
        self.workers: dict[str, WorkerProcess] = {name: self._make(name) for name in names}
        self.rooms: dict[str, WorkerRoom] = {}
        self._next_room = 0
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.silent_s = SILENT_S  # how long a worker may say nothing before it is killed
        self._failures: dict[str, int] = {}  # by worker name: deaths in a row before serving

    def _make(self, name: str) -> WorkerProcess:
        return WorkerProcess(
            name, self._log_level, self._stop_timeout_s, self._on_event, self._on_exit, nice=self._nice
        )

    async def start(self) -> None:
        for worker in self.workers.values():
            await worker.start()
        self._spawn(self._watch(), "media worker watchdog")

    async def _watch(self) -> None:
        """Kill workers that have gone silent (a stuck event loop serves none of its calls)."""
        while True:
            await asyncio.sleep(self.silent_s / 3)
            now = time.monotonic()
            for worker in list(self.workers.values()):
                if worker.alive and worker.silent_for(now, self.silent_s) > 0:
                    silent = now - worker.last_heard
                    logger.error("%s (pid %s) silent for %.0f s; killing it", worker.name, worker.pid, silent)
                    worker.kill()

    def create_room(self, **room: Any) -> WorkerRoom:
        """A room in the least-loaded live worker. Raises WorkerGone when none is alive."""
        live = [w for w in self.workers.values() if w.alive]
        if not live or self._stopping:
            raise WorkerGone("no media worker is running")
        # A worker still importing (just started or replaced) serves only if none is ready.
        ready = [w for w in live if w.ready] or live
        worker = min(ready, key=lambda w: (len(w.rooms), w.cpu_pct))
        self._next_room += 1
        room_id = f"r{self._next_room}"
        worker.rooms.add(room_id)
        proxy = WorkerRoom(
            worker,
            room_id,
            room["label"],
            answer_timeout_s=self._answer_timeout_s,
            close_timeout_s=self._stop_timeout_s,
            forget=self._forget,
        )
        self.rooms[room_id] = proxy
        worker.send({"op": "create", "room": room_id, **room})
        return proxy

    def cpu_by_worker(self) -> dict[str, float]:
        """Each serving worker's own CPU, % of one core, over its last stats interval."""
        return {name: w.cpu_pct for name, w in self.workers.items() if w.alive and w.ready}

    def _forget(self, room: WorkerRoom) -> None:
        self.rooms.pop(room.room_id, None)
        room.process.rooms.discard(room.room_id)

    def _on_event(self, worker: WorkerProcess, message: wire.Message) -> None:
        if message.get("event") == "stats":
            for room_id, stats in (message.get("rooms") or {}).items():
                room = self.rooms.get(room_id)
                if room is not None:
                    room.update(stats)
        elif message.get("event") == "peer_state":
            room = self.rooms.get(message.get("room", ""))
            if room is not None and room.on_peer_state is not None:
                room.on_peer_state(message["role"], message["state"])
        elif message.get("event") == "preview":
            room = self.rooms.get(message.get("room", ""))
            if room is not None and room.on_preview is not None:
                room.on_preview(bool(message["own_camera"]))

    def _on_exit(self, worker: WorkerProcess) -> None:
        if self._stopping:
            return
        logger.error("%s (pid %s) died; ending its %d call(s)", worker.name, worker.pid, len(worker.rooms))
        self.metrics.worker_restarts.inc()
        for room_id in list(worker.rooms):
            room = self.rooms.get(room_id)
            if room is not None:
                room.lost()
        self._spawn(self._replace(worker), f"replace {worker.name}")

    def _spawn(self, coroutine: Any, name: str) -> None:
        task = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _replace(self, dead: WorkerProcess) -> None:
        await dead.stop(self._stop_timeout_s)  # reaps the dead process (no zombie)
        # One that died before it could serve will likely do so again: wait longer each time.
        failures = self._failures[dead.name] = 0 if dead.ready else self._failures.get(dead.name, 0) + 1
        while True:
            if failures:
                await asyncio.sleep(min(RESTART_BACKOFF_MAX_S, 2.0 ** (failures - 1)))
            if self._stopping:
                return
            worker = self._make(dead.name)
            self.workers[dead.name] = worker
            try:
                await worker.start()
                return
            except Exception:
                # The pool carries on with the workers it has (new rooms go to them) and tries
                # again, waiting longer each time: a worker that never starts has no exit to
                # bring it back.
                logger.exception("%s could not be restarted", dead.name)
                failures = self._failures[dead.name] = self._failures.get(dead.name, 0) + 1

    async def stop(self) -> None:
        """Stop every worker (each closes its rooms), kill any that hangs. Safe to call twice."""
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        # A worker takes up to the same timeout to close its rooms: give it that and a margin.
        await asyncio.gather(*(w.stop(self._stop_timeout_s + 2) for w in self.workers.values()))


async def _exited(process: Any, timeout: float) -> bool:
    """Wait until ``process`` (a multiprocessing.Process) has exited, at most ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(process.sentinel, on_exit)
    try:
        await asyncio.wait_for(exited, timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(process.sentinel)
    return True
