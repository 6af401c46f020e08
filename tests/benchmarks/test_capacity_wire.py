"""The capacity clients' wire reading (benchmarks.capacity_wire): RTP headers and abs-capture-time
read from the bytes, frames completed on the marker bit, and a forwarded frame told by its
payloads as the server's packetizer cuts them. Pure and fast; the clients' use of it on real
peers runs in test_capacity_suite.py (--run-slow)."""

from __future__ import annotations

import fractions
import struct

import av

from benchmarks.capacity_media import FrameProbe, encode_video_loop, loop_payloads_keys, payloads_key
from benchmarks.capacity_wire import (
    FrameAssembler,
    PacketTally,
    WireReceiver,
    extension_value,
    rtp_header,
    starts_frame,
)
from media.packetized import Packetizer

ABS_CAPTURE_TIME_ID = 14


def datagram(
    sequence: int,
    timestamp: int,
    payload: bytes,
    *,
    marker: bool = False,
    captured: int | None = None,
    payload_type: int = 102,
) -> bytes:
    """An RTP datagram as the server sends one: mid (id 1) always, abs-capture-time on request."""
    elements = bytes([0x10]) + b"1"  # id 1, one byte: mid "1"
    if captured is not None:
        elements += bytes([(ABS_CAPTURE_TIME_ID << 4) | 7]) + captured.to_bytes(8, "big")
    elements += bytes(-len(elements) % 4)
    header = struct.pack("!BBHLL", 0x90, payload_type | (0x80 if marker else 0), sequence, timestamp, 0xABCD)
    return header + struct.pack("!HH", 0xBEDE, len(elements) // 4) + elements + payload


def test_a_header_and_its_abs_capture_time_are_read_from_the_bytes():
    data = datagram(65535, 0xFFFFFFF0, b"payload", marker=True, captured=0x0123456789ABCDEF)
    payload_type, marker, sequence, timestamp, start, profile, block = rtp_header(data)
    assert (payload_type, marker, sequence, timestamp) == (102, True, 65535, 0xFFFFFFF0)
    assert data[start:] == b"payload"
    assert extension_value(profile, block, ABS_CAPTURE_TIME_ID) == bytes.fromhex("0123456789ABCDEF")
    assert extension_value(profile, block, 1) == b"1"
    assert extension_value(profile, block, 5) is None
    assert extension_value(0xBEDE, bytes([0xE7, 1, 2]), ABS_CAPTURE_TIME_ID) is None  # says 8 bytes, has 2
    assert rtp_header(data[:11]) is None
    assert rtp_header(data[:14]) is None  # says it has an extension block it does not have


def test_frames_complete_on_the_marker_and_a_gap_drops_the_frame():
    frames = []
    assembler = FrameAssembler(lambda *frame: frames.append(frame), ABS_CAPTURE_TIME_ID)

    def add(data: bytes) -> None:
        assembler.add(data, rtp_header(data))

    add(datagram(65534, 3000, b"a", captured=77))
    add(datagram(65535, 3000, b"b"))
    add(datagram(0, 3000, b"c", marker=True))  # across the sequence wrap
    add(datagram(1, 6000, b"d"))
    add(datagram(3, 6000, b"f", marker=True))  # 2 never came
    add(datagram(4, 9000, b"g", marker=True, captured=99))
    assert [(t, p, c) for t, p, c, _ in frames] == [(3000, [b"a", b"b", b"c"], 77), (9000, [b"g"], 99)]
    assert assembler.incomplete == 1
    assert assembler.ssrc == 0xABCD


def test_a_frame_whose_first_packets_were_lost_is_not_whole_and_one_after_a_lost_frame_is():
    frames = []
    assembler = FrameAssembler(lambda *frame: frames.append(frame), ABS_CAPTURE_TIME_ID)
    assembler.codec = "VP8"
    start, more = b"\x90\x80\x01" + b"s", b"\x80\x80\x01" + b"m"  # S bit set / clear, PID 0

    def add(sequence: int, timestamp: int, payload: bytes, marker: bool = False) -> None:
        data = datagram(sequence, timestamp, payload, marker=marker)
        assembler.add(data, rtp_header(data))

    add(10, 3000, start)
    add(11, 3000, more, marker=True)
    # Frame 6000's first packet (12) is lost: 13 and 14 come, in sequence, up to the marker.
    add(13, 6000, more)
    add(14, 6000, more, marker=True)
    # Frame 9000 is lost whole (15, 16); 12000 comes whole after the gap.
    add(17, 12000, start)
    add(18, 12000, more, marker=True)
    assert [t for t, *_ in frames] == [3000, 12000]
    assert assembler.incomplete == 1


async def test_a_frames_start_is_told_by_the_codec_in_what_the_server_cuts():
    for codec in ("H264", "VP8"):
        loop = await encode_video_loop(codec, 640, 360, frames=6)
        packetizer = Packetizer(codec)  # the server's cut (media.packetized)
        for index, data in enumerate(loop.frames):
            packet = av.Packet(data)
            packet.pts, packet.time_base = index * 3000, fractions.Fraction(1, 90000)
            packet.is_keyframe = index == 0
            starts = [starts_frame(codec, payload) for payload in packetizer(packet).payloads]
            assert starts[0], (codec, index)
            if codec == "VP8" or index > 0:  # a delta frame: nothing after its first packet starts one
                assert not any(starts[1:]), (codec, index, starts)
            assert len(starts) == 1 or not starts[-1]  # a frame's last packet never starts one
    # Fragments that cannot start a frame, and a slice that is not the picture's first.
    assert not starts_frame("H264", bytes([0x7C, 0x05]) + b"xx")  # FU-A, IDR, not its start
    assert starts_frame("H264", bytes([0x7C, 0x85, 0x88]))  # FU-A start, IDR, first_mb_in_slice 0
    assert not starts_frame("H264", bytes([0x7C, 0x81, 0x40]))  # FU-A start of a later slice
    assert not starts_frame("H264", bytes([0x78, 0x00]))  # STAP-A too short to read
    assert not starts_frame("VP8", bytes([0x91]))  # S set, but partition 1
    assert not starts_frame("VP8", b"")


def test_a_peer_s_datagrams_go_by_payload_type():
    video, voice = PacketTally(), PacketTally()
    receiver = WireReceiver(video, voice, {111})
    receiver(datagram(1, 1, b"x", payload_type=111))
    receiver(datagram(2, 2, b"y", payload_type=102))
    receiver(datagram(3, 3, b"z", payload_type=102))
    receiver(b"\x80\x66")
    assert (len(voice.times), len(video.times), receiver.malformed) == (1, 2, 1)


async def test_a_forwarded_frame_is_told_by_its_payloads_as_the_server_cuts_them():
    loop = await encode_video_loop("H264", 640, 360, frames=4)
    probe = FrameProbe()
    probe.knows("H264", loop)
    assert probe.known_payloads == loop_payloads_keys(loop)
    packetizer = Packetizer("H264")  # the server's: one cut for every viewer (media.packetized)
    for index, data in enumerate(loop.frames):
        packet = av.Packet(data)
        packet.pts, packet.time_base = index * 3000, fractions.Fraction(1, 90000)
        payloads = packetizer(packet).payloads
        probe.on_wire_frame(index * 3000, payloads, None, 100.0 + index)
    assert len(probe.forwarded) == len(loop.frames) == len(probe.arrivals)
    # A composite (anything else) is not taken for the agent's frame.
    probe.on_wire_frame(99, [b"\x65" + bytes(50)], None, 200.0)
    assert len(probe.forwarded) == len(loop.frames) and len(probe.arrivals) == len(loop.frames) + 1
    assert payloads_key("H264", [b"\x65" + bytes(50)]) not in probe.known_payloads
