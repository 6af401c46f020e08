"""Suite "matchmaker", distributed run: the fan-out's watching customers, in their own processes.

One client process per serve process holds that process's share of the watching sockets,
and of the other waiting customers ("silent": in other queues, their messages read and
dropped; a customer whose socket closes is suspended, not waiting, so they keep it open).

Each process is one ``epoll`` loop over plain non-blocking sockets speaking WebSocket through
:mod:`benchmarks.matchmaker_wire`: every frame parsed, every text message decoded as JSON,
pings answered. The ``websockets`` client cost ~50 us a message (measured alone: 50-51 ms
per 1,000), and the three client processes then took half of an event's CPU on the two cores
they share with the servers they measure; a customer's browser is not on the server's cores.

Two times per socket and event: when the socket's reader decoded its new place (``read``,
``time.perf_counter()``: CLOCK_MONOTONIC, one clock for every process of the machine, so the
parent compares it with the moment it sent ``leave``), and when the kernel received the bytes
that carried it (``delivered``: SO_TIMESTAMPNS on the TCP socket, CLOCK_REALTIME, compared
with the parent's ``time.time()`` at the send). Delivered minus sent is the server side's
fan-out; read adds this machine's clients' own turn on the cores.

The parent talks to each process over a pipe: ``ready`` (with the positions), then for every
event ``arm`` -> ``armed``, and once every socket has read its new position (one place up),
``done`` with the first and last read and delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import multiprocessing
import resource
import select
import socket
import struct
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit

from benchmarks.matchmaker_wire import (
    CLOSE,
    PING,
    PONG,
    TEXT,
    FrameReader,
    WireError,
    check_handshake,
    client_frame,
    handshake_request,
    new_key,
)

BATCH = 25  # joins in flight per process: bigger batches make leader steps of seconds under load
WATCHED = ("fanout", "")  # the watched queue (skill, language)
# Linux's SO_TIMESTAMPNS_NEW (asm-generic/socket.h; Python names neither): the kernel's
# receive time of the bytes read, a 64-bit timespec on every architecture, since Linux 5.1.
SO_TIMESTAMPNS_NEW = 64
_STAMP = socket.CMSG_SPACE(struct.calcsize("qq"))
_NEVER = float("inf")


@dataclass(frozen=True)
class Arrivals:
    """One event over every watcher: reads on ``time.perf_counter()``, deliveries (the kernel's
    receive stamps) on ``time.time()``; ``inf`` / 0.0 when the kernel gave none."""

    first_read: float
    last_read: float
    first_delivered: float
    last_delivered: float


class _Socket:
    """One customer's socket: its reader, the place it was last told, the place it awaits."""

    __slots__ = ("sock", "frames", "position", "target")

    def __init__(self, sock: socket.socket, frames: FrameReader) -> None:
        self.sock = sock
        self.frames = frames
        self.position: int | None = None
        self.target: int | None = None


def _connect(url: str) -> tuple[_Socket, bytes]:
    """A socket through the opening handshake (blocking), then non-blocking; the bytes past it."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    sock = socket.create_connection((host, port), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with contextlib.suppress(OSError):  # without it, deliveries are not reported (reads are)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS_NEW, 1)
    key = new_key()
    sock.sendall(handshake_request(host, port, parts.path or "/", key))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise WireError(f"{url} closed the socket during the handshake")
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    conn = _Socket(sock, FrameReader(check_handshake(head, key)))
    sock.setblocking(False)
    return conn, rest


class _Loop:
    """Every socket of this process and the parent's pipe, in one epoll."""

    def __init__(self, pipe: Connection) -> None:
        self.pipe = pipe
        self.poller = select.epoll()
        self.poller.register(pipe.fileno(), select.EPOLLIN)
        self.sockets: dict[int, _Socket] = {}
        self.arm(0)

    def arm(self, count: int) -> None:
        self.left = count
        self.first_read = self.first_delivered = _NEVER
        self.last_read = self.last_delivered = 0.0

    def add(self, conn: _Socket, rest: bytes) -> None:
        self.sockets[conn.sock.fileno()] = conn
        self.poller.register(conn.sock.fileno(), select.EPOLLIN)
        if rest:
            self._messages(conn, rest, [])

    def send(self, conn: _Socket, opcode: int, payload: bytes) -> None:
        conn.sock.setblocking(True)  # a few bytes; never a wait worth a writer of its own
        try:
            conn.sock.sendall(client_frame(opcode, payload))
        finally:
            conn.sock.setblocking(False)

    def poll(self, timeout_s: float | None) -> bool:
        """Read what is ready (waiting up to ``timeout_s``, None: until something is); whether
        the parent has spoken."""
        spoke = False
        for fd, _ in self.poller.poll(-1 if timeout_s is None else max(0.0, timeout_s)):
            conn = self.sockets.get(fd)
            if conn is None:
                spoke = True
                continue
            try:
                data, ancillary, _, _ = conn.sock.recvmsg(65536, _STAMP)
            except BlockingIOError:
                continue
            if not data:
                raise WireError("the server closed a customer's socket")
            self._messages(conn, data, ancillary)
        return spoke

    def _messages(self, conn: _Socket, data: bytes, ancillary: list[Any]) -> None:
        for opcode, payload in conn.frames.feed(data):
            if opcode == TEXT:
                message = json.loads(payload)
                if message.get("type") != "queue_status":
                    continue
                conn.position = message["position"]
                if conn.target is not None and conn.position == conn.target:
                    conn.target = None
                    self._arrived(time.perf_counter(), ancillary)
            elif opcode == PING:
                self.send(conn, PONG, payload)
            elif opcode == CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                raise WireError(f"the server closed a customer's socket ({code}: {payload[2:]!r})")

    def _arrived(self, read: float, ancillary: list[Any]) -> None:
        self.first_read = min(self.first_read, read)
        self.last_read = max(self.last_read, read)
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS_NEW:
                seconds, nanoseconds = struct.unpack("qq", data[: struct.calcsize("qq")])
                delivered = seconds + nanoseconds / 1e9
                self.first_delivered = min(self.first_delivered, delivered)
                self.last_delivered = max(self.last_delivered, delivered)
        self.left -= 1

    def join(self, url: str, names: list[str], queues: list[tuple[str, str]]) -> list[_Socket]:
        """Open one socket for each customer, join them all, until each is told a place."""
        joined = []
        for name, (skill, language) in zip(names, queues, strict=True):
            conn, rest = _connect(url)
            self.add(conn, rest)
            body = {"type": "join", "name": name, "skill": skill, "language": language}
            self.send(conn, TEXT, json.dumps(body).encode())
            joined.append(conn)
        deadline = time.monotonic() + 60
        while any(conn.position is None for conn in joined):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{names[0]}..: no queue_status within 60 s of joining")
            self.poll(deadline - time.monotonic())
        return joined

    def wait_for_parent(self) -> Any:
        while not self.poll(None):
            pass
        return self.pipe.recv()


def _main(pipe: Connection, url: str, count: int, prefix: str, silent: list[tuple[str, str]]) -> None:
    loop = _Loop(pipe)
    watchers: list[_Socket] = []
    for start in range(0, count, BATCH):
        names = [f"{prefix}-{i}" for i in range(start, min(count, start + BATCH))]
        watchers += loop.join(url, names, [WATCHED] * len(names))
    for start in range(0, len(silent), BATCH):
        batch = range(start, min(len(silent), start + BATCH))
        loop.join(url, [f"{prefix}-silent-{i}" for i in batch], [silent[i] for i in batch])
    settle = time.monotonic() + 0.5  # let the last joins' updates land
    while time.monotonic() < settle:
        loop.poll(settle - time.monotonic())
    gc.freeze()  # what the fill made lives to the end: no full collection walks it mid-event
    pipe.send(("ready", [w.position for w in watchers]))
    while loop.wait_for_parent() == "arm":
        for watcher in watchers:
            watcher.target = watcher.position - 1  # type: ignore[operator]
        loop.arm(len(watchers))
        pipe.send("armed")
        deadline = time.monotonic() + 60
        while loop.left > 0 and time.monotonic() < deadline:
            loop.poll(deadline - time.monotonic())
        if loop.left > 0:
            pipe.send(("timeout", loop.left))
        else:
            pipe.send(("done", loop.first_read, loop.last_read, loop.first_delivered, loop.last_delivered))
    # The serve processes are killed first; nothing here is measured any more.
    for conn in loop.sockets.values():
        conn.sock.close()


def _run(pipe: Connection, url: str, count: int, prefix: str, silent: list[tuple[str, str]]) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        _main(pipe, url, count, prefix, silent)
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

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self._procs if proc.pid is not None]

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

    async def arrivals(self) -> Arrivals:
        """This event's first and last read and delivery over every process."""
        replies = await self._replies(90)
        if any(r[0] != "done" for r in replies):
            raise RuntimeError(f"not every watcher read its new place: {replies}")
        return Arrivals(
            first_read=min(r[1] for r in replies),
            last_read=max(r[2] for r in replies),
            first_delivered=min(r[3] for r in replies),
            last_delivered=max(r[4] for r in replies),
        )

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
