"""A sender whose frames are sent by the caller, as they come, not by a task of its own.

A relayed voice packet went from the speaker's receive callback into a queue, woke the
listener's sender task, came back out through its track's ``recv`` and aiortc's
``_next_encoded_frame`` chain, and only then was stamped and sent: a task wake-up and a chain
of coroutine steps for each 20 ms packet, four voice streams a call (benchmarks/README.md,
capacity). :class:`DirectSend` sends a frame on the stamped stream of ``_rtp_loop`` (same
numbering, extensions, watcher, history and sender-report counts) in the caller's own
step. The sender's RTP task still owns the stream: it sets it up when the sender starts,
sends what a TURN relay's pair needs aiortc's coroutines for, and ends it on ``stop()``.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from typing import Any

from aiortc import RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import RTCEncodedFrame

from media.aiortc_internals._names import _wrap_method
from media.aiortc_internals._rtp_loop import StampedStream, finish, stamps

logger = logging.getLogger(__name__)

LEFT_DATAGRAMS = 64  # datagrams waiting for aiortc's own path; older ones are dropped


class DirectSend:
    """Send ``sender``'s frames from the caller (install before the sender starts).

    :meth:`send` is False while there is no stream to send on (not started, stopped, no track,
    disabled, not connected, or a sender another hook keeps on aiortc's loop): the caller's
    track then carries the frame as before.
    """

    def __init__(self, sender: RTCRtpSender) -> None:
        self.sent = 0
        self.failed = 0
        self._stream: StampedStream | None = None
        self._sender = weakref.ref(sender)  # the sender holds the track that holds this
        self._left: deque[bytes] = deque(maxlen=LEFT_DATAGRAMS)
        self._left_arrived = asyncio.Event()
        own = weakref.ref(self)

        def wrap(stock_loop):
            def run_rtp(codec: RTCRtpCodecParameters):
                direct = own()
                return stock_loop(codec) if direct is None else direct._run(codec, stock_loop)

            return run_rtp

        _wrap_method(sender, "_run_rtp", wrap)

    @property
    def ready(self) -> bool:
        """The sender runs the stamped stream, has a track and is enabled: :meth:`send` sends
        (unless the transport is not connected)."""
        sender = self._sender()
        return self._stream is not None and sender is not None and bool(sender.track) and sender._enabled

    def send(self, payloads: list[bytes], timestamp: int) -> bool:
        """Send one frame's ``payloads`` with the track's ``timestamp`` (the codec's clock, before
        the sender's random origin) now; False, sending nothing, where it cannot."""
        stream = self._stream
        if stream is None or not self.ready:
            return False
        try:
            left = stream.send(RTCEncodedFrame(payloads, timestamp, None))
        except ConnectionError:
            return False
        except Exception:
            # Called from a speaker's receive path: whatever went wrong here must not end it.
            self.failed += 1
            if self.failed == 1:
                logger.exception("direct RTP of sender %s failed", stream.stamper.ssrc)
            return False
        if left:
            self._left.extend(left)
            self._left_arrived.set()
        self.sent += 1
        return True

    async def _run(self, codec: RTCRtpCodecParameters, stock_loop: Any) -> None:
        sender = self._sender()
        if not stamps(sender):
            await stock_loop(codec)  # hooked some other way: aiortc's loop reads the track
            return
        sender._RTCRtpSender__rtp_started.set()
        try:
            self._stream = StampedStream(sender, codec)
            while True:
                await self._left_arrived.wait()
                self._left_arrived.clear()
                while self._left:
                    await sender.transport._send_rtp(self._left.popleft())
        except (asyncio.CancelledError, ConnectionError):
            pass
        except Exception:
            logger.exception("direct RTP of sender %s failed", sender._ssrc)
        finally:
            self._stream = None
        finish(sender)
