"""Receivers' decoder threads handing each decoded frame to the event loop in one step.

aiortc's ``decoder_worker`` (the thread each receiver starts) passes every decoded frame back
with ``asyncio.run_coroutine_threadsafe(output_q.put(frame), loop)``: the loop wakes, makes a
Task for the ``put`` coroutine, runs it on its next pass, and only the pass after that does the
track's ``recv()`` see the frame. :func:`decode_with_direct_hand_back` installs the same worker
with ``loop.call_soon_threadsafe(output_q.put_nowait, frame)``: the queue is aiortc's unbounded
``asyncio.Queue``, so ``put_nowait`` does what ``put`` did, in order, one loop pass sooner and
without a Task a frame (the server's probe: decoded -> the compositor's slot 0.35-0.48 ms).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
from typing import Any

import aiortc.rtcrtpreceiver
import av

logger = logging.getLogger(__name__)

_STOCK_WORKER = aiortc.rtcrtpreceiver.decoder_worker
_PARAMETERS = ["loop", "input_q", "output_q", "decode_error"]  # aiortc 1.16's worker


def _hand_back(loop: asyncio.AbstractEventLoop, output_q: asyncio.Queue, item: Any) -> bool:
    """``item`` into ``output_q`` on ``loop``; False once the loop is closed (nothing reads)."""
    try:
        loop.call_soon_threadsafe(output_q.put_nowait, item)
    except RuntimeError:  # the loop closed under a receiver that was never stopped
        return False
    return True


def decoder_worker(
    loop: asyncio.AbstractEventLoop,
    input_q: queue.Queue,
    output_q: asyncio.Queue,
    decode_error: threading.Event,
) -> None:
    """aiortc's worker (same codecs, same error handling, same end of track), handing back directly."""
    codec_name = None
    decoder = None
    while True:
        task = input_q.get()
        if task is None:
            _hand_back(loop, output_q, None)  # the track's end
            break
        codec, encoded_frame = task
        if codec.name != codec_name:
            decoder = aiortc.rtcrtpreceiver.get_decoder(codec)
            codec_name = codec.name
        try:
            frames = decoder.decode(encoded_frame)  # type: ignore[union-attr]
        except av.FFmpegError as exc:
            # As aiortc: keep the decoder's state (a reset fails every frame until a keyframe).
            logger.warning("failed to decode %s frame: %s", codec.name, exc)
            decode_error.set()
            continue
        for frame in frames:
            if not _hand_back(loop, output_q, frame):
                return


def decode_with_direct_hand_back() -> bool:
    """Make every receiver started from now on use :func:`decoder_worker`; idempotent. False
    (aiortc's worker kept) when aiortc's worker is not the one this copies."""
    current = aiortc.rtcrtpreceiver.decoder_worker
    if current is decoder_worker:
        return True
    if current is not _STOCK_WORKER or list(inspect.signature(current).parameters) != _PARAMETERS:
        logger.warning("aiortc's decoder worker is not the one expected: decoded frames go back its way")
        return False
    aiortc.rtcrtpreceiver.decoder_worker = decoder_worker
    return True
