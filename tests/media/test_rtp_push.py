"""media.rtp_push: encoded frames as plain RTP on a real loopback UDP socket, packetized by aiortc's
own packetizers, and keyframes asked for when none went out for a while."""

from __future__ import annotations

import asyncio
import fractions

import av
import numpy as np
import pytest
from aiortc import RTCRtpCodecParameters
from aiortc.codecs.h264 import H264Decoder, H264PayloadDescriptor
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket

from media.encoded import PacketQueueTrack, is_keyframe
from media.rtp_push import RtpPacketizer, RtpPush

H264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=96)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


def h264_frames(count: int, keyframe_every: int = 1000) -> list[av.Packet]:
    """``count`` 640x360 frames encoded by libx264 (Annex B), a keyframe first."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 640, 360, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 90000)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(keyframe_every)}
    packets = []
    for index in range(count):
        picture = np.full((540, 640), (index * 7) % 255, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
        frame.pts, frame.time_base = index * 3000, encoder.time_base
        packets += encoder.encode(frame)
    for packet in packets:
        packet.is_keyframe = is_keyframe("H264", bytes(packet))
    return packets


class Receiver(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[RtpPacket] = []

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.packets.append(RtpPacket.parse(data))


def test_packetizing_keeps_one_ssrc_sequence_and_timeline():
    frames = h264_frames(3)
    packetizer = RtpPacketizer(H264)
    sent = [[RtpPacket.parse(d) for d in packetizer.datagrams(frame)] for frame in frames]
    flat = [p for packets in sent for p in packets]
    assert {p.payload_type for p in flat} == {96} and len({p.ssrc for p in flat}) == 1
    steps = [(b.sequence_number - a.sequence_number) & 0xFFFF for a, b in zip(flat, flat[1:], strict=False)]
    assert steps == [1] * (len(flat) - 1)
    for packets in sent:  # one timestamp a frame, the marker on its last packet only
        assert len({p.timestamp for p in packets}) == 1
        assert [p.marker for p in packets] == [0] * (len(packets) - 1) + [1]
    assert (sent[1][0].timestamp - sent[0][0].timestamp) % (1 << 32) == 3000
    opus = RtpPacketizer(OPUS)
    voice = av.Packet(b"\xfc" + bytes(40))
    voice.pts, voice.time_base = 960, fractions.Fraction(1, 48000)
    (datagram,) = opus.datagrams(voice)
    assert RtpPacket.parse(datagram).payload == bytes(voice) and RtpPacket.parse(datagram).payload_type == 111


async def test_a_push_sends_decodable_rtp_and_asks_for_keyframes_when_none_went_out():
    loop = asyncio.get_running_loop()
    transport, receiver = await loop.create_datagram_endpoint(Receiver, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    track = PacketQueueTrack(64)
    asks: list[float] = []
    push = RtpPush(
        track, ("127.0.0.1", port), H264, ask_keyframe=lambda: asks.append(loop.time()), keyframe_every_s=0.2
    )
    await push.start()
    try:
        frames = h264_frames(12)
        for frame in frames:
            track.offer(frame)
            await asyncio.sleep(0.03)
        await asyncio.sleep(0.1)
        assert push.packets == 12 and push.keyframes == 1
        assert len(receiver.packets) == push.datagrams
        assert 1 <= len(asks) <= 2  # ~0.36 s of delta frames after the keyframe, asked each 0.2 s
        # What arrived decodes: aiortc's depacketizer and decoder, frame by frame.
        decoder, decoded = H264Decoder(), 0
        by_timestamp: dict[int, list[RtpPacket]] = {}
        for packet in receiver.packets:
            by_timestamp.setdefault(packet.timestamp, []).append(packet)
        for packets in by_timestamp.values():
            data = b"".join(H264PayloadDescriptor.parse(p.payload)[1] for p in packets)
            decoded += len(decoder.decode(JitterFrame(data=data, timestamp=packets[0].timestamp)))
        assert decoded >= 11
    finally:
        await push.stop()
        transport.close()
    assert track.readyState == "ended"
    await push.stop()  # twice is safe


async def test_a_push_to_nobody_listening_keeps_going():
    track = PacketQueueTrack(8)
    push = RtpPush(track, ("127.0.0.1", 9), H264)  # the discard port: nothing answers, ICMP may
    await push.start()
    for frame in h264_frames(4):
        track.offer(frame)
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)
    assert push.packets == 4
    await push.stop()


async def test_a_push_that_failed_stops_without_raising():
    track = PacketQueueTrack(8)

    def broken_source() -> None:
        raise RuntimeError("no keyframe")

    push = RtpPush(track, ("127.0.0.1", 9), H264, ask_keyframe=broken_source, keyframe_every_s=0.0)
    await push.start()
    task = push._task
    for frame in h264_frames(3):  # a keyframe, then a delta frame: the ask fails, the task with it
        track.offer(frame)
    await asyncio.wait({task}, timeout=5)
    assert task.done() and isinstance(task.exception(), RuntimeError)
    await push.stop()  # logged, not raised: whoever owns the push goes on closing
    assert track.readyState == "ended" and push._transport is None


def test_an_unknown_codec_is_refused():
    with pytest.raises(ValueError):
        RtpPacketizer(RTCRtpCodecParameters(mimeType="video/AV1", clockRate=90000, payloadType=35))
