"""RTCP XR: a receive-only browser's reference time reports get their DLRR answer (RFC 3611)."""

from __future__ import annotations

import struct

from media.round_trip import DLRR, RRTR, RTCP_XR, delay_since_last_rr, reference_times


def rrtr(ssrc: int, ntp: int) -> bytes:
    block = struct.pack("!BBHQ", RRTR, 0, 2, ntp)
    return struct.pack("!BBHI", 0x80, RTCP_XR, (8 + len(block)) // 4 - 1, ssrc) + block


def receiver_report(ssrc: int) -> bytes:
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)


def test_reference_times_are_found_in_a_compound_packet_and_nonsense_is_skipped():
    compound = receiver_report(7) + rrtr(7, 0x0123456789ABCDEF)
    assert reference_times(compound) == [(7, 0x456789AB)]
    assert reference_times(b"") == []
    assert reference_times(b"\x80\xcf\xff\xff" + b"\x00" * 8) == []  # a length past the end
    assert reference_times(rrtr(7, 1)[:-4]) == []  # truncated


def test_the_answer_is_one_dlrr_block_per_report():
    packet = delay_since_last_rr(99, [(7, 0x456789AB, 0.5), (8, 1, 0.0)])
    first, packet_type, length, sender = struct.unpack_from("!BBHI", packet)
    assert (first, packet_type, sender) == (0x80, RTCP_XR, 99)
    assert len(packet) == 4 * (length + 1)
    block_type, _, block_length = struct.unpack_from("!BBH", packet, 8)
    assert (block_type, block_length) == (DLRR, 6)
    assert struct.unpack_from("!III", packet, 12) == (7, 0x456789AB, 32768)  # half a second in 1/65536 s
    assert struct.unpack_from("!III", packet, 24) == (8, 1, 0)
