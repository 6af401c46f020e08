"""aiortc helpers: marker-bit completion, tuned encoders, codec preferences, over real loopback peers."""

import asyncio
import fractions

import av
import numpy as np
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder, VpxPayloadDescriptor
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket

from media.peers import (
    KEYFRAME_BUDGET_S,
    Bitrate,
    FastH264Encoder,
    MarkerJitterBuffer,
    SafeVp8Encoder,
    negotiated_codec,
)
from media.sources import TestCardTrack
from media.stamp import read_stamp
from media.testing import LoopbackCall


def packet(seq: int, ts: int, marker: bool, data: bytes) -> RtpPacket:
    p = RtpPacket(payload_type=96, sequence_number=seq, timestamp=ts)
    p.marker = int(marker)
    p._data = data
    return p


def frame_packets(seq: int, ts: int, parts: list[bytes]) -> list[RtpPacket]:
    return [packet(seq + i, ts, i == len(parts) - 1, part) for i, part in enumerate(parts)]


def feed(buffer: JitterBuffer, packets: list[RtpPacket]) -> list:
    out = []
    for p in packets:
        _, frame = buffer.add(p)
        out.append(frame)
    return out


def test_stock_buffer_waits_for_the_next_frame_but_marker_buffer_does_not():
    first = frame_packets(100, 3000, [b"a", b"b", b"c"])
    stock = feed(JitterBuffer(capacity=128, is_video=True), first)
    assert stock == [None, None, None]  # frame complete, yet held back

    released = feed(MarkerJitterBuffer(capacity=128, is_video=True), first)
    assert released[:2] == [None, None]
    assert released[2].data == b"abc" and released[2].timestamp == 3000


def test_marker_buffer_waits_for_gaps_and_handles_reordering_and_wraparound():
    buffer = MarkerJitterBuffer(capacity=128, is_video=True)
    a, b, c = frame_packets(65534, 9000, [b"a", b"b", b"c"])  # sequence numbers wrap: 65534, 65535, 0
    assert feed(buffer, [a, c]) == [None, None]  # b missing: not complete
    (frame,) = feed(buffer, [b])
    assert frame.data == b"abc"
    # The next frame, marker packet first.
    d, e = frame_packets(1, 12000, [b"d", b"e"])
    assert feed(buffer, [e]) == [None]
    (frame,) = feed(buffer, [d])
    assert frame.data == b"de" and frame.timestamp == 12000
    # A late duplicate of an already released packet is ignored.
    assert feed(buffer, [packet(0, 9000, True, b"c")]) == [None]


def test_marker_buffer_falls_back_without_marker_bits():
    buffer = MarkerJitterBuffer(capacity=128, is_video=True)
    out = feed(buffer, [packet(10, 1, False, b"x"), packet(11, 1, False, b"y"), packet(12, 2, False, b"z")])
    assert out[:2] == [None, None]
    assert out[2].data == b"xy"  # released by the next frame's first packet, as stock aiortc does


def test_a_packet_that_never_comes_is_given_up_after_the_gap_timeout():
    now = [0.0]
    buffer = MarkerJitterBuffer(capacity=128, is_video=True)
    buffer.clock = lambda: now[0]
    first = frame_packets(100, 1000, [b"a1", b"a2"])
    second = frame_packets(102, 2000, [b"b1", b"b2", b"b3"])
    third = frame_packets(105, 3000, [b"c1", b"c2"])
    fourth = frame_packets(107, 4000, [b"d1"])
    assert feed(buffer, first)[-1].data == b"a1a2"
    del second[1]  # lost, and its retransmission too
    assert feed(buffer, second + third) == [None] * 4  # held: the gap may yet be filled
    now[0] = 0.3
    pli, frame = buffer.add(fourth[0])
    assert (pli, frame) == (False, None)  # still within gap_timeout_s
    now[0] = 0.4
    pli, frame = buffer.add(packet(108, 5000, False, b"e1"))
    # The broken frame is dropped; the next whole one goes on, and a keyframe is asked for.
    assert pli is True and frame.data == b"c1c2" and buffer.gaps_skipped == 1
    assert buffer.add(packet(109, 5000, True, b"e2"))[1].data == b"d1"
    assert buffer.add(packet(110, 6000, True, b"f"))[1].data == b"e1e2"
    # The late packet, if it ever comes, is ignored.
    assert buffer.add(packet(103, 2000, False, b"b2")) == (False, None)


def test_a_sequence_that_starts_again_further_back_is_not_taken_for_a_gap():
    now = [0.0]
    buffer = MarkerJitterBuffer(capacity=128, is_video=True)
    buffer.clock = lambda: now[0]
    for index in range(10):
        feed(buffer, frame_packets(1000 + 2 * index, 1000 * index, [b"x", b"y"]))
    # The sender starts again 110 packets back (aiortc's buffer resets): frames flow on.
    out = feed(buffer, frame_packets(910, 50_000, [b"p", b"q"]))
    r, s, t = frame_packets(912, 51_000, [b"r", b"s", b"t"])
    out += feed(buffer, [r])
    now[0] = 1.0  # a slow frame: nothing is missing, only late
    out += feed(buffer, [s, t])
    assert [f.data for f in out if f is not None] == [b"pq", b"rst"] and buffer.gaps_skipped == 0


class BurstTrack(MediaStreamTrack):
    """Sends ``count`` stamped frames, then nothing (a paused camera), until stopped."""

    kind = "video"

    def __init__(self, count: int):
        super().__init__()
        self.source = TestCardTrack(640, 360, fps=15, stamp=True)
        self.count = count
        self.sent = 0

    async def recv(self):
        if self.sent >= self.count:
            await asyncio.Event().wait()  # never set: cancelled when the sender stops
        self.sent += 1
        return await self.source.recv()


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_last_frame_before_a_pause_arrives_only_with_marker_completion(codec):
    """Stock aiortc holds a frame until the next one starts: the frame before a pause never shows."""
    count = 5
    stock = LoopbackCall([BurstTrack(count)], codec=codec, low_latency=False, label="stock")
    fast = LoopbackCall([BurstTrack(count)], codec=codec, low_latency=True, label="marker")
    async with stock, fast:
        await fast.wait_frames(count)
        await stock.wait_frames(count - 1)
        await asyncio.sleep(0.5)  # ample time for the last frame, if it were coming
        assert fast.slots[0].received == count
        assert stock.slots[0].received == count - 1
        assert read_stamp(fast.slots[0].latest.frame).frame_id == count - 1
        assert read_stamp(stock.slots[0].latest.frame).frame_id == count - 2


@pytest.mark.parametrize(("codec", "encoder_type"), [("VP8", SafeVp8Encoder), ("H264", FastH264Encoder)])
async def test_codec_preference_and_tuned_encoder_are_used(codec, encoder_type):
    track = TestCardTrack(640, 360, fps=30, stamp=True)
    async with LoopbackCall([track], codec=codec) as call:
        slot = await call.wait_frames(3)
        (transceiver,) = call.sender.getTransceivers()
        assert negotiated_codec(transceiver) == codec
        assert isinstance(transceiver.sender._RTCRtpSender__encoder, encoder_type)
        frame = slot.latest.frame
        assert (frame.width, frame.height) == (640, 360)
        assert read_stamp(frame) is not None


async def test_stock_sender_keeps_stock_encoder():
    async with LoopbackCall([TestCardTrack(640, 360)], tuned=False) as call:
        await call.wait_frames(2)
        encoder = call.sender.getTransceivers()[0].sender._RTCRtpSender__encoder
        assert type(encoder) is Vp8Encoder


def is_vp8_keyframe(payloads: list[bytes]) -> bool:
    _, data = VpxPayloadDescriptor.parse(payloads[0])
    return data[0] & 1 == 0  # VP8 frame tag: inverse key frame flag


async def test_vp8_i_tagged_input_forces_a_keyframe_only_in_stock_aiortc():
    source = TestCardTrack(640, 360, paced=False)
    frames = [await source.recv() for _ in range(6)]
    results = {}
    for encoder in (Vp8Encoder(), SafeVp8Encoder()):
        keys = []
        for frame in frames:
            frame.pict_type = av.video.frame.PictureType.I  # as a decoded keyframe would be
            payloads, _ = encoder.encode(frame)
            keys.append(is_vp8_keyframe(payloads))
        results[type(encoder).__name__] = keys
    assert results["Vp8Encoder"] == [True] * 6
    assert results["SafeVp8Encoder"] == [True] + [False] * 5
    # A requested keyframe still is one.
    assert is_vp8_keyframe(SafeVp8Encoder().encode(frames[0], force_keyframe=True)[0])


async def test_h264_encoder_uses_a_preset_and_bitrates_are_clamped():
    source = TestCardTrack(640, 360, paced=False)
    encoder = FastH264Encoder(Bitrate(start=800_000, min=400_000, max=2_000_000))
    frame = await source.recv()
    # x264 writes its settings into an SEI message of the first frame: ultrafast means subme=0.
    tuned = b"".join(encoder.encode(frame)[0])
    stock = b"".join(H264Encoder().encode(frame)[0])
    assert b"subme=0 " in tuned and b"me=dia" in tuned
    assert b"subme=7 " in stock  # x264's "medium"
    encoder.target_bitrate = 10_000_000  # what REMB on loopback asks for
    assert encoder.target_bitrate == 2_000_000
    low = FastH264Encoder(Bitrate(start=800_000, min=400_000, max=2_000_000))
    low.target_bitrate = 1
    assert low.target_bitrate == 400_000
    vp8 = SafeVp8Encoder(Bitrate(start=700_000))
    assert vp8.target_bitrate == 700_000
    vp8.encode(await source.recv())
    assert vp8.codec.bit_rate == 700_000


def noisy_frames(count: int, width: int = 1280, height: int = 720):
    """A camera's picture: a gradient under sensor noise (the hardest content for a keyframe)."""
    rng = np.random.default_rng(1)
    gradient = np.tile(np.linspace(30, 220, width, dtype=np.float32), (height, 1))
    chroma = np.full((height // 2, width), 128, np.uint8)  # U and V planes, stacked as yuv420p lays them
    for index in range(count):
        luma = np.clip(gradient + rng.normal(0, 6, gradient.shape), 0, 255).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(np.vstack([luma, chroma]), format="yuv420p")
        frame.pts, frame.time_base = index * 3000, fractions.Fraction(1, 90_000)
        yield frame


def test_an_h264_keyframe_fits_a_third_of_a_second_of_the_bitrate():
    # Without a rate buffer x264 made these keyframes 70-95 KB at 1 Mbps (20x a frame): a 1 Mbps
    # link's queue (~37 KB) dropped each one, and every keyframe asked for after a loss with it.
    bitrate = 1_000_000
    encoder = FastH264Encoder(Bitrate(start=bitrate, min=300_000, max=3_000_000))
    sizes = [
        sum(map(len, encoder.encode(frame, force_keyframe=index % 30 == 0)[0]))
        for index, frame in enumerate(noisy_frames(90))
    ]
    budget = bitrate * KEYFRAME_BUDGET_S / 8
    assert max(sizes) <= budget * 1.05, (max(sizes), budget)
    assert sum(sizes) * 8 / 3 > 0.7 * bitrate  # ... and the rate is still used
