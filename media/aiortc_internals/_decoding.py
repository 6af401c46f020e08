"""Receivers' decoder threads handing each decoded frame to the event loop in one step.

aiortc's ``decoder_worker`` (the thread each receiver starts) passes every decoded frame back
with ``asyncio.run_coroutine_threadsafe(output_q.put(frame), loop)``: the loop wakes, makes a
Task for the ``put`` coroutine, runs it on its next pass, and only the pass after that does the
track's ``recv()`` see the frame. :func:`decode_with_direct_hand_back` installs the same worker
with ``loop.call_soon_threadsafe(output_q.put_nowait, frame)``: the queue is aiortc's unbounded
``asyncio.Queue``, so ``put_nowait`` does what ``put`` did, in order, one loop pass sooner and
without a Task a frame (the server's probe: decoded -> the compositor's slot 0.35-0.48 ms).

:func:`take_decoded` lets a consumer take a track's frames on the decoder's thread itself
(media.compose_lane: the compositor's primary composed and encoded there, no crossing before).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

import aiortc.rtcrtpreceiver
import av

logger = logging.getLogger(__name__)

_STOCK_WORKER = aiortc.rtcrtpreceiver.decoder_worker
_PARAMETERS = ["loop", "input_q", "output_q", "decode_error"]  # aiortc 1.16's worker
# Who takes a track's decoded frames on its decoder's thread, by the track's queue (the worker's
# ``output_q``; weak: a track gone takes its taker with it).
Taker = Callable[[av.VideoFrame], bool]
_TAKERS: weakref.WeakKeyDictionary[asyncio.Queue, Taker] = weakref.WeakKeyDictionary()


def take_decoded(track: Any, taker: Taker | None) -> bool:
    """From now on, ``taker(frame)`` is called on ``track``'s decoder thread with each frame it
    decodes while no other frame waits to be decoded, before it goes to the track; a frame it takes
    (returns True) does not go on (the track never gives it). ``None`` removes the taker. False
    (nothing installed) when ``track`` is not a receiver's or its frames do not go through
    :func:`decoder_worker`."""
    output_q = getattr(track, "_queue", None)
    if not isinstance(output_q, asyncio.Queue) or aiortc.rtcrtpreceiver.decoder_worker is not decoder_worker:
        return False
    if taker is None:
        _TAKERS.pop(output_q, None)
    else:
        _TAKERS[output_q] = taker
    return True


def _taken(output_q: asyncio.Queue, frame: av.VideoFrame) -> bool:
    taker = _TAKERS.get(output_q)
    if taker is None:
        return False
    try:
        return taker(frame)
    except Exception:  # the taker's bug must not end the decoder: the frame goes on as usual
        logger.exception("a decoded frame's taker failed")
        return False


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
            # Only a decoder keeping up offers its frame: one that is behind (more frames waiting)
            # hands it back as ever, keeps decoding while the loop composes and an executor
            # encodes, and the slot keeps the newest. Taking frames then would run each frame's
            # compose and encode after its decode on this one thread, and the wait would grow.
            if input_q.empty() and _taken(output_q, frame):
                continue
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
