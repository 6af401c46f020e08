"""SRTP handled in the socket's callback: a server peer's receive path without a queue and a task a packet.

aiortc hands each datagram from aioice's connection to an ``asyncio.Queue``, which the DTLS
transport's task reads (``_recv_next``): a queue put, a future woken, a loop pass and the task's
step a packet before SRTP is even undone. A server receiving four media streams a call pays that
for ~200 packets a second a call. :func:`receive_directly` takes each SRTP and SRTCP datagram where
aioice hands it on (``Connection.data_received``, below any hook on the socket: the kernel arrival
stamps of media.aiortc_internals._arrivals see it first) and does there what ``_recv_next`` would:
the transport's counters, the arrival time, SRTP, then aiortc's own ``_handle_rtp_data`` /
``_handle_rtcp_data`` (and every hook on them, the routers' and the receivers'), run to completion
in the callback. Their receivers' statistics, NACKs, PLI, REMB, retransmissions and jitter
buffers are aiortc's as before. DTLS and STUN still go aiortc's way; an empty datagram, which
ended aiortc's transport task (and so the call's media), goes nowhere.

The handlers are coroutines that only rarely wait (an RTCP send through a TURN relay binding its
channel): one that does is finished in a task, and the datagrams that come meanwhile wait behind
it, in order, as they did behind aiortc's task.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Coroutine
from typing import Any

import pylibsrtp
from aiortc import RTCDtlsTransport, clock
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtp import is_rtcp

from media.aiortc_internals._names import _wrap_method

logger = logging.getLogger(__name__)

MAX_WAITING = 512  # datagrams held behind a handler that waits; more are dropped, as a full socket would


class DirectReceive:
    """One DTLS transport's SRTP handled as it arrives (see the module); :meth:`stop` undoes it and
    cancels and awaits a handler still waiting."""

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self._dtls = weakref.ref(dtls)
        self._connection = dtls.transport._connection  # type: ignore[attr-defined]
        self._waiting: deque[bytes] | None = None  # set while a handler waits: what came since
        self._finishing: asyncio.Task[None] | None = None
        self.handled = 0  # datagrams handled here
        self.dropped = 0  # empty, failing SRTP, or past MAX_WAITING while a handler waited
        own = weakref.ref(self)

        def wrap(queue_it):
            def data_received(data: bytes, component: int) -> None:
                direct = own()
                if direct is None or not direct._take(data):
                    queue_it(data, component)

            return data_received

        _wrap_method(self._connection, "data_received", wrap)

    def _take(self, data: bytes) -> bool:
        """Handle ``data`` here if it is SRTP on a connected transport; False: aiortc's way."""
        if not data:
            # aiortc's transport reads data[0]: one empty datagram from anyone ended its task, and
            # with it every packet of the call. Nothing in it to take: dropped.
            self.dropped += 1
            return True
        dtls = self._dtls()
        if dtls is None or not 127 < data[0] < 192:
            return False
        if dtls._rx_srtp is None or dtls._state != DtlsState.CONNECTED:  # type: ignore[attr-defined]
            return False
        if self._waiting is not None:
            if len(self._waiting) < MAX_WAITING:
                self._waiting.append(data)
            else:
                self.dropped += 1
            return True
        self._handle(dtls, data)
        return True

    def _handle(self, dtls: RTCDtlsTransport, data: bytes) -> None:
        """What aiortc's ``_recv_next`` does with an SRTP or SRTCP datagram, run to completion now
        (or, where a handler waits, finished in a task with later datagrams behind it)."""
        self.handled += 1
        dtls._RTCDtlsTransport__rx_bytes += len(data)  # type: ignore[attr-defined]
        dtls._RTCDtlsTransport__rx_packets += 1  # type: ignore[attr-defined]
        srtp = dtls._rx_srtp  # type: ignore[attr-defined]
        try:
            if is_rtcp(data):
                handling = dtls._handle_rtcp_data(srtp.unprotect_rtcp(data))  # type: ignore[attr-defined]
            else:
                arrival_time_ms = clock.current_ms()
                handling = dtls._handle_rtp_data(srtp.unprotect(data), arrival_time_ms=arrival_time_ms)  # type: ignore[attr-defined]
        except (pylibsrtp.Error, ValueError):  # ValueError: longer than pylibsrtp's 1500-byte buffer
            self.dropped += 1  # not authentic, replayed or too long: dropped, as aiortc drops the first two
            return
        self._run(handling)

    def _run(self, handling: Coroutine[Any, Any, None]) -> None:
        try:
            waits_on = handling.send(None)
        except (StopIteration, ConnectionError):  # ConnectionError: the transport is closing
            return
        except Exception:
            # aiortc's task would log it and stop receiving for good; one bad packet must not.
            logger.exception("handling a received datagram failed")
            return
        self._waiting = deque()
        self._finishing = asyncio.get_running_loop().create_task(
            self._finish(handling, waits_on), name="direct receive: a handler that waits"
        )

    async def _finish(self, handling: Coroutine[Any, Any, None], waits_on: Any) -> None:
        """Drive ``handling`` on (it waits on ``waits_on``: a future, or None for one loop pass),
        then handle the datagrams that came meanwhile, in order."""
        try:
            while True:
                if waits_on is not None:
                    waits_on._asyncio_future_blocking = False  # taken over, as a task takes a future it got
                thrown: asyncio.CancelledError | None = None
                try:
                    await (waits_on if waits_on is not None else asyncio.sleep(0))
                except asyncio.CancelledError as cancelled:
                    if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                        raise  # stop(): ours
                    # What it waited on was cancelled by its owner: the handler hears it, as in a
                    # task, and this goes on (else every later datagram would wait here for good).
                    thrown = cancelled
                except Exception:
                    pass  # the handler reads the outcome itself as it resumes
                try:
                    waits_on = handling.send(None) if thrown is None else handling.throw(thrown)
                except (StopIteration, ConnectionError, asyncio.CancelledError):
                    break
                except Exception:
                    logger.exception("handling a received datagram failed")
                    break
        except asyncio.CancelledError:
            handling.close()
            raise
        waiting, self._waiting = self._waiting or deque(), None
        dtls = self._dtls()
        while waiting and dtls is not None and dtls._state == DtlsState.CONNECTED:  # type: ignore[attr-defined]
            self._handle(dtls, waiting.popleft())
            if self._waiting is not None:  # that one waits too: its own task takes the rest
                self._waiting.extend(waiting)
                return

    async def stop(self) -> None:
        """Undo: datagrams go aiortc's way again; a handler still waiting is cancelled and awaited."""
        self._connection.__dict__.pop("data_received", None)
        self._waiting = None
        task, self._finishing = self._finishing, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})


def receive_directly(dtls: RTCDtlsTransport) -> DirectReceive:
    """Handle ``dtls``'s SRTP and SRTCP as it arrives, in aioice's callback (see the module). Call
    once its ICE transport exists (after ``setRemoteDescription``); ``stop()`` on closing."""
    return DirectReceive(dtls)
