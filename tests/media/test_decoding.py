"""Receivers' decoder threads hand decoded frames back in one loop callback (media.aiortc_internals):
in order, the track's end after the last frame, a frame that fails to decode flagged and
skipped, and every receiver started after media.receive is imported runs this worker."""

from __future__ import annotations

import asyncio
import queue
import threading

import aiortc.rtcrtpreceiver
import av
from aiortc.codecs import depayload
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

import media.receive  # noqa: F401 - installs the worker, as the server does
from media import aiortc_internals as internals
from media.aiortc_internals import _decoding
from media.peers import SafeVp8Encoder
from media.testing import LoopbackCall, TestCardTrack

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)


async def encoded_frames(count: int) -> list[JitterFrame]:
    card, encoder = TestCardTrack(320, 180, paced=False), SafeVp8Encoder()
    frames = []
    for _ in range(count):
        payloads, timestamp = encoder.encode(await card.recv())
        data = b"".join(depayload(VP8, payload) for payload in payloads)
        frames.append(JitterFrame(data=data, timestamp=timestamp))
    return frames


async def run_worker(tasks: list) -> tuple[list, threading.Event]:
    """The worker on its own thread, fed ``tasks``: what reached the loop's queue, then the end."""
    loop = asyncio.get_running_loop()
    inputs: queue.Queue = queue.Queue()
    outputs: asyncio.Queue = asyncio.Queue()
    failed = threading.Event()
    for task in tasks:
        inputs.put(task)
    inputs.put(None)
    worker = threading.Thread(
        target=aiortc.rtcrtpreceiver.decoder_worker, args=(loop, inputs, outputs, failed)
    )
    worker.start()
    received = []
    while (item := await asyncio.wait_for(outputs.get(), 10)) is not None:
        received.append(item)
    worker.join(5)
    return received, failed


async def test_frames_come_back_in_order_and_the_end_after_them() -> None:
    assert internals.decode_with_direct_hand_back()  # aiortc's worker is the one it copies
    frames = await encoded_frames(6)
    received, failed = await run_worker([(VP8, frame) for frame in frames])
    assert [type(f) for f in received] == [av.VideoFrame] * 6
    assert [f.pts for f in received] == [frame.timestamp for frame in frames]
    assert not failed.is_set()


async def test_a_frame_that_fails_to_decode_is_flagged_and_the_next_still_comes() -> None:
    frames = await encoded_frames(3)
    garbage = JitterFrame(data=b"\x00" * 40, timestamp=1)  # a VP8 key frame tag with no valid header
    received, failed = await run_worker([(VP8, frames[0]), (VP8, garbage), (VP8, frames[1])])
    assert failed.is_set()
    assert [f.pts for f in received] == [frames[0].timestamp, frames[1].timestamp]


async def test_a_real_receiver_decodes_through_it() -> None:
    async with LoopbackCall([TestCardTrack()], codec="VP8") as call:
        await call.wait_frames(3)
        # Its receiver started after media.receive was imported: its decoder thread runs this worker.
        assert aiortc.rtcrtpreceiver.decoder_worker.__module__ == "media.aiortc_internals._decoding"
        # ... and a decoder thread of this call's is running it (not only the module's name swapped).
        running = [getattr(thread, "_target", None) for thread in threading.enumerate()]
        assert _decoding.decoder_worker in running
