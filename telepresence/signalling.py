"""The ``/ws`` endpoint: one socket per browser tab, JSON messages in and out.

Per socket: a size limit (close 1009), a token-bucket rate limit (an error per
dropped message, close 1008 when the flood goes on), an outbox drained by its own
writer task so that a slow reader never stalls the switchboard (close 1013 when
it backs up), and validation of every message before the switchboard sees it.

A message to a socket with nothing queued is written at once, in the caller's turn
(:func:`start_eagerly`): a head of the queue leaving sends thousands of positions, and
waking a writer task for each cost about a quarter of a door's time per socket. Only a
send that must wait (the peer reads slowly) is left to the writer, with what follows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Coroutine, Generator
from typing import Any, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from telepresence.config import Settings
from telepresence.metrics import Metrics
from telepresence.protocol import ClientMessage, ProtocolError, parse_client_message
from telepresence.sessions import Connection

logger = logging.getLogger(__name__)

_ids = itertools.count(1)
_CLOSE = object()
_STOP = object()  # the writer ends without a close frame: the peer is gone
# What a socket write raises when the peer is gone (RuntimeError: Starlette refuses to send
# on a socket that already closed).
GONE = (WebSocketDisconnect, OSError, RuntimeError)
# After this many messages dropped in a row for flooding, the socket is closed.
FLOOD_STRIKES = 20


class MessageHandler(Protocol):
    """Who a socket's messages go to: the switchboard, or a door of a centre of many processes."""

    async def handle(self, conn: Connection, message: ClientMessage) -> None: ...

    async def disconnected(self, conn: Connection) -> None: ...


INTERNAL_ERROR = {"type": "error", "code": "internal", "message": "the server could not handle that message"}


async def handle_frame(
    handler: MessageHandler,
    conn: Connection,
    raw: str | bytes,
    metrics: Metrics,
    *,
    reraise: tuple[type[Exception], ...] = (),
) -> None:
    """Validate one client frame and hand it over; a refusal goes back to the sender as an
    ``error`` (counted by code), and a bug costs this one message, never the server or other
    sockets. ``reraise``: failures that are not the message's (the caller ends its work)."""
    try:
        await handler.handle(conn, parse_client_message(raw))
    except ProtocolError as exc:
        metrics.protocol_errors.labels(exc.code).inc()
        conn.send(exc.to_message())
    except reraise:
        raise
    except Exception:
        logger.exception("%s: error handling a message", conn.id)
        conn.send(dict(INTERNAL_ERROR))


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; pure, time passed in."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class _Started:
    """A coroutine run up to its first wait, awaited to its end by whoever awaits this."""

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
        self._coro = coro
        self._waiting_on = waiting_on

    def close(self) -> None:
        """Never to be awaited: end the coroutine where it waits (its finally clauses run)."""
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, Any]:
        # What ``yield from coro`` does, from the wait the coroutine is already in.
        waiting_on = self._waiting_on
        while True:
            try:
                value = yield waiting_on
            except BaseException as exc:  # cancellation included: the coroutine sees it
                try:
                    waiting_on = self._coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    waiting_on = self._coro.send(value)
                except StopIteration as done:
                    return done.value


def start_eagerly(coro: Coroutine[Any, Any, Any]) -> _Started | None:
    """Run ``coro`` now, in the caller's turn, up to its first real wait (Python 3.12's eager
    tasks do the same). None when it finished without waiting (its exception, if it raised,
    propagates); else the rest of it, for a task to await."""
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return None
    return _Started(coro, waiting_on)


class SocketConnection:
    """A :class:`~telepresence.switchboard.Connection` over a Starlette WebSocket."""

    def __init__(self, websocket: WebSocket, outbox_limit: int) -> None:
        self.id = f"ws-{next(_ids)}"
        self._websocket = websocket
        self._outbox: asyncio.Queue[Any] = asyncio.Queue(maxsize=outbox_limit)
        self._writer_idle = False  # the writer waits on an empty outbox: a send may go at once
        self._closing = False
        self.close_code: int | None = None

    def send(self, message: dict[str, Any]) -> None:
        if not self._closing:
            self.send_text(json.dumps(message))

    def send_text(self, text: str) -> None:
        """:meth:`send` of a message already encoded as JSON text."""
        if self._closing:
            return
        if self._writer_idle and self._outbox.empty():
            try:
                rest = start_eagerly(self._websocket.send_text(text))
            except Exception as exc:  # the writer ends, as when its own send fails
                if not isinstance(exc, GONE):
                    logger.exception("%s: could not write to the socket", self.id)
                self._closing = True
                self._outbox.put_nowait(_STOP)
                return
            if rest is not None:  # the peer reads slowly: the writer finishes it, first
                self._outbox.put_nowait(rest)
            return
        try:
            self._outbox.put_nowait(text)
        except asyncio.QueueFull:
            logger.warning("%s: outbox full, closing a socket that does not read", self.id)
            self._closing = True
            self.close_code = 1013
            self._drain_and_close(1013, "too slow: messages backed up")

    def close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        self.close_code = code
        if self._outbox.full():
            self._drain_and_close(code, reason)
        else:
            self._outbox.put_nowait((_CLOSE, code, reason))

    def _drain_and_close(self, code: int, reason: str) -> None:
        while not self._outbox.empty():
            item = self._outbox.get_nowait()
            if isinstance(item, _Started):
                item.close()  # a send stopped at its first wait: let it release what it holds
        self._outbox.put_nowait((_CLOSE, code, reason))

    async def run_writer(self) -> None:
        """Send queued messages in order; close the socket when asked.

        Ends quietly when the peer is gone: the reader sees the disconnect and cleans up.
        """
        while True:
            self._writer_idle = True
            item = await self._outbox.get()
            self._writer_idle = False
            if item is _STOP:
                return
            if isinstance(item, tuple) and item[0] is _CLOSE:
                with contextlib.suppress(Exception):
                    await self._websocket.close(code=item[1], reason=item[2])
                return
            try:
                await (item if isinstance(item, _Started) else self._websocket.send_text(item))
            except GONE:
                self._closing = True
                return


async def serve_socket(
    websocket: WebSocket, switchboard: MessageHandler, settings: Settings, metrics: Metrics
) -> None:
    """Run one signalling socket until it closes."""
    await websocket.accept()
    conn = SocketConnection(websocket, settings.outbox_limit)
    writer = asyncio.create_task(conn.run_writer(), name=f"{conn.id}-writer")
    metrics.connections.inc()
    loop = asyncio.get_running_loop()
    bucket = TokenBucket(settings.rate_per_s, settings.rate_burst, loop.time())
    strikes = 0
    try:
        while not writer.done():
            receive = asyncio.ensure_future(websocket.receive())
            done, _ = await asyncio.wait({receive, writer}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:
                receive.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await receive
                break
            event = receive.result()
            if event["type"] == "websocket.disconnect":
                break
            raw = event.get("text") if event.get("text") is not None else event.get("bytes") or b""
            size = len(raw.encode()) if isinstance(raw, str) else len(raw)
            if size > settings.max_message_bytes:
                metrics.protocol_errors.labels("too_large").inc()
                conn.close(1009, f"message over {settings.max_message_bytes} bytes")
                continue
            if not bucket.take(loop.time()):
                strikes += 1
                metrics.protocol_errors.labels("rate_limited").inc()
                if strikes >= FLOOD_STRIKES:
                    conn.close(1008, "too many messages")
                else:
                    conn.send(
                        {"type": "error", "code": "rate_limited", "message": "slow down: message dropped"}
                    )
                continue
            strikes = 0
            await handle_frame(switchboard, conn, raw, metrics)
    except WebSocketDisconnect:
        pass
    finally:
        metrics.connections.dec()
        await switchboard.disconnected(conn)
        if not writer.done():
            conn.close(1000, "bye")
            try:
                await asyncio.wait_for(writer, timeout=1.0)
            except (TimeoutError, Exception):
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writer
        if websocket.application_state != WebSocketState.DISCONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close()
