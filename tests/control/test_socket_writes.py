"""Writes to a signalling socket: at once when nothing waits, in order always, 1013 for a reader
that stops."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import websockets
import websockets.sync.client

from tests.conftest import LiveServer, join


def conn_of(server: LiveServer, name: str) -> Any:
    """The server's side of a waiting customer's socket."""
    [session] = [c for c in server.switchboard.customers.values() if c.name == name]
    return session.conn


async def test_a_message_to_an_idle_socket_is_written_before_the_sender_yields(server: LiveServer):
    # The client runs in a thread of its own: it reads while this loop, the server's, is blocked.
    quiet, finished = threading.Event(), threading.Event()
    got: list[tuple[float, str]] = []

    def client() -> None:
        with websockets.sync.client.connect(server.ws_url) as ws:
            ws.send(json.dumps({"type": "join", "name": "Ada"}))
            while True:  # the join's own messages, until the socket is quiet
                try:
                    ws.recv(0.3)
                except TimeoutError:
                    break
            quiet.set()
            message = ws.recv(5)
            got.append((time.monotonic(), message))
            finished.wait(5)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        assert await asyncio.to_thread(quiet.wait, 10), "the client never settled"
        conn_of(server, "Ada").send({"type": "probe"})
        time.sleep(0.5)  # noqa: ASYNC251 (the point: this loop is blocked, no server task can write)
        blocked_until = time.monotonic()
    finally:
        finished.set()
        await asyncio.to_thread(thread.join, 10)
    assert got and json.loads(got[0][1]) == {"type": "probe"}
    assert got[0][0] < blocked_until  # it arrived while the server's loop was still blocked


async def test_a_reader_that_stops_gets_every_message_in_order_then_1013(server: LiveServer, connect):
    reader = await join(connect, "Slow")
    conn = conn_of(server, "Slow")
    pad = "x" * 65_536
    # The client stops reading (it buffers a few frames, then the kernel's buffers fill, then the
    # server's transport pauses): sends that could not go at once wait, then the outbox backs up.
    sent = 0
    while not conn._closing and sent < 5_000:
        conn.send({"type": "blob", "n": sent, "pad": pad})
        sent += 1
        if sent % 16 == 0:
            await asyncio.sleep(0)  # the writer and the transport get their turns
    assert conn.close_code == 1013, f"{sent} sends and the socket was not closed as too slow"
    numbers = []
    try:
        async for raw in reader.ws:
            message = json.loads(raw)
            if message["type"] == "blob":
                numbers.append(message["n"])
    except websockets.ConnectionClosed:
        pass
    assert reader.ws.close_code == 1013
    assert numbers == list(range(len(numbers))) and len(numbers) > 16  # in order, none lost before the close
