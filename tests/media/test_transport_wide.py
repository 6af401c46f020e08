"""Transport-wide sequence numbers written by the stamped loop (media/aiortc_internals/_transport_wide.py),
as a browser's sender writes them where transport-cc was negotiated: byte for byte what aiortc
serialises for the same numbers, one counter across a peer's streams."""

from __future__ import annotations

from aiortc.rtp import RtpPacket

from media import aiortc_internals as internals
from media.aiortc_internals._rtp_loop import packed_extensions
from media.aiortc_internals._transports import _ExtensionsMap
from tests.media.test_rtp_loop import ABS_SEND_TIME, MID, aiortcs, extension_map

TRANSPORT_CC = internals.TRANSPORT_CC_URI


def numbered(extensions_map, payloads, sequence, timestamp, ntp, mid, first_number) -> list[bytes]:
    """aiortc's serialisation of the same packets with transport-wide numbers from ``first_number``."""
    out = []
    for i, datagram in enumerate(aiortcs(extensions_map, payloads, sequence, timestamp, ntp, mid)):
        packet = RtpPacket.parse(datagram, extensions_map)
        packet.extensions.transport_sequence_number = (first_number + i) & 0xFFFF
        out.append(packet.serialize(extensions_map))
    return out


def test_a_peers_streams_number_their_packets_from_one_counter():
    extensions_map = extension_map((1, MID), (3, ABS_SEND_TIME), (5, TRANSPORT_CC))
    counter = internals.TransportSequence(5)
    camera = internals.RtpStamper(97, 0x11223344, extensions_map, "0", counter)
    mic = internals.RtpStamper(97, 0x11223344, extensions_map, "0", counter)  # same ids: compared alike
    first = counter.take(0)
    ours = camera.datagrams([b"a" * 900, b"b" * 900, b"c" * 10], 65534, 3000, 0xE0000000_12345678)
    ours += mic.datagrams([b"voice"], 200, 48000, 0xE0000000_22345678)
    frame = [b"a" * 900, b"b" * 900, b"c" * 10]
    theirs = numbered(extensions_map, frame, 65534, 3000, 0xE0000000_12345678, "0", first)
    theirs += numbered(extensions_map, [b"voice"], 200, 48000, 0xE0000000_22345678, "0", first + 3)
    assert ours == theirs
    assert [RtpPacket.parse(d, extensions_map).extensions.transport_sequence_number for d in ours] == [
        (first + i) & 0xFFFF for i in range(4)
    ]


def test_a_packet_with_an_extension_of_its_own_is_numbered_too():
    # The capture clock gives a frame's first packet abs-capture-time: a block of its own.
    ids = ((1, MID), (3, ABS_SEND_TIME), (5, TRANSPORT_CC), (14, internals.ABS_CAPTURE_TIME_URI))
    extensions_map = extension_map(*ids, kind=_ExtensionsMap)
    counter = internals.TransportSequence(5)
    stamper = internals.RtpStamper(97, 7, extensions_map, "1", counter)
    first = counter.take(0)
    packet = RtpPacket(payload_type=97, sequence_number=10, timestamp=90, ssrc=7, payload=b"p0")
    packet.extensions.mid, packet.extensions.abs_send_time = "1", (1 << 40 >> 14) & 0xFFFFFF
    packet.extensions.abs_capture_time = 0xE0000000_00000001
    own = {0: packed_extensions(extensions_map, packet.extensions)}
    first_packet, second = stamper.datagrams([b"p0", b"p1"], 10, 90, 1 << 40, own)
    values = [RtpPacket.parse(d, extensions_map).extensions for d in (first_packet, second)]
    assert [v.transport_sequence_number for v in values] == [first, (first + 1) & 0xFFFF]
    assert [v.mid for v in values] == ["1", "1"]
    captured = (0xE0000000_00000001).to_bytes(8, "big")
    assert captured in first_packet and captured not in second


def test_without_a_counter_nothing_is_numbered():
    extensions_map = extension_map((1, MID), (3, ABS_SEND_TIME), (5, TRANSPORT_CC))
    (datagram,) = internals.RtpStamper(97, 7, extensions_map, "0").datagrams([b"x"], 1, 2, 3)
    assert RtpPacket.parse(datagram, extensions_map).extensions.transport_sequence_number is None
