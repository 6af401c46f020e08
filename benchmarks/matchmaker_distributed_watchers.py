"""Suite "matchmaker", distributed run: the fan-out's watching customers, in their own processes.

One client process per serve process holds that process's share of the watching sockets,
and of the other waiting customers ("silent": in other queues, their messages read and
dropped; a customer whose socket closes is suspended, not waiting, so they keep it open).
Reading 3,000 ``queue_status`` messages costs a Python client ~30-50 us each; in the
benchmark's own loop that would be 100-150 ms of client time inside every measured event.
Timestamps are ``time.perf_counter()`` (CLOCK_MONOTONIC on Linux: one clock for every process
of the machine), so the parent compares them with the moment it sent ``leave``.

The parent talks to each process over a pipe: ``ready`` (with the positions), then for every
event ``arm`` -> ``armed``, and once every socket has read its new position (one place up),
``done`` with the first and last arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import resource
import time
from multiprocessing.connection import Connection
from typing import Any

BATCH = 25  # joins in flight per process: bigger batches make leader steps of seconds under load
WATCHED = ("fanout", "")  # the watched queue (skill, language)


class _Watcher:
    def __init__(self, ws: Any, watch: _Watch) -> None:
        self.ws = ws
        self.watch = watch
        self.position: int | None = None
        self.target: int | None = None
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                message = json.loads(raw)
                if message.get("type") != "queue_status":
                    continue
                self.position = message["position"]
                if self.target is not None and self.position == self.target:
                    self.target = None
                    self.watch.arrived(time.perf_counter())


class _Watch:
    """One event: counts the sockets still to read their new place."""

    def __init__(self) -> None:
        self.left = 0
        self.first = self.last = 0.0
        self.done = asyncio.Event()

    def arm(self, count: int) -> None:
        self.left, self.first, self.last = count, 0.0, 0.0
        self.done.clear()

    def arrived(self, at: float) -> None:
        self.first = self.first or at
        self.last = max(self.last, at)
        self.left -= 1
        if self.left == 0:
            self.done.set()


async def _join(url: str, name: str, queue: tuple[str, str], watch: _Watch) -> _Watcher:
    import websockets

    ws = await websockets.connect(url, max_size=None, open_timeout=60, ping_interval=None)
    skill, language = queue
    await ws.send(json.dumps({"type": "join", "name": name, "skill": skill, "language": language}))
    watcher = _Watcher(ws, watch)
    deadline = time.monotonic() + 60
    while watcher.position is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: no queue_status after joining")
        await asyncio.sleep(0.01)
    return watcher


async def _main(pipe: Connection, url: str, count: int, prefix: str, silent: list[tuple[str, str]]) -> None:
    watch = _Watch()
    watchers: list[_Watcher] = []
    for start in range(0, count, BATCH):
        names = [f"{prefix}-{i}" for i in range(start, min(count, start + BATCH))]
        watchers += await asyncio.gather(*(_join(url, name, WATCHED, watch) for name in names))
    others: list[_Watcher] = []
    for start in range(0, len(silent), BATCH):
        batch = range(start, min(len(silent), start + BATCH))
        others += await asyncio.gather(*(_join(url, f"{prefix}-silent-{i}", silent[i], watch) for i in batch))
    await asyncio.sleep(0.5)  # let the last joins' updates land
    pipe.send(("ready", [w.position for w in watchers]))
    while True:
        command = await asyncio.to_thread(pipe.recv)
        if command == "stop":
            break
        for watcher in watchers:
            watcher.target = watcher.position - 1  # type: ignore[operator]
        watch.arm(len(watchers))
        pipe.send("armed")
        try:
            await asyncio.wait_for(watch.done.wait(), 60)
            pipe.send(("done", watch.first, watch.last))
        except TimeoutError:
            pipe.send(("timeout", watch.left))
    # The serve processes are killed first; nothing here is measured any more.
    for watcher in watchers + others:
        watcher.reader.cancel()


def _run(pipe: Connection, url: str, count: int, prefix: str, silent: list[tuple[str, str]]) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        asyncio.run(_main(pipe, url, count, prefix, silent))
    except Exception as exc:  # the parent is waiting on the pipe: tell it rather than hang it
        pipe.send(("error", repr(exc)))


class WatcherProcesses:
    """``counts[i]`` watching customers and ``silent[i]`` others (their (skill, language)) on
    ``urls[i]``, each process in the parent's control."""

    def __init__(self, urls: list[str], counts: list[int], silent: list[list[tuple[str, str]]]) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes: list[Connection] = []
        self._procs = []
        for index, (url, count, others) in enumerate(zip(urls, counts, silent, strict=True)):
            mine, theirs = context.Pipe()
            proc = context.Process(
                target=_run, args=(theirs, url, count, f"watcher{index}", others), daemon=True
            )
            self._pipes.append(mine)
            self._procs.append(proc)

    async def start(self) -> list[int]:
        """Start them all; the positions every watcher (not the silent) was told."""
        for proc in self._procs:
            proc.start()
        positions: list[int] = []
        for reply in await self._replies(600):
            if reply[0] != "ready":
                raise RuntimeError(f"a watcher process failed: {reply}")
            positions += reply[1]
        return positions

    async def arm(self) -> None:
        for pipe in self._pipes:
            pipe.send("arm")
        replies = await self._replies(30)
        if any(r != "armed" for r in replies):
            raise RuntimeError(f"a watcher process failed: {replies}")

    async def arrivals(self) -> tuple[float, float]:
        """The first and the last arrival of this event over every process (perf_counter)."""
        replies = await self._replies(90)
        if any(r[0] != "done" for r in replies):
            raise RuntimeError(f"not every watcher read its new place: {replies}")
        return min(r[1] for r in replies), max(r[2] for r in replies)

    async def _replies(self, timeout_s: float) -> list[Any]:
        async def one(pipe: Connection) -> Any:
            if not await asyncio.to_thread(pipe.poll, timeout_s):
                raise RuntimeError(f"a watcher process said nothing for {timeout_s} s")
            return pipe.recv()

        return list(await asyncio.gather(*(one(pipe) for pipe in self._pipes)))

    def stop(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send("stop")
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
