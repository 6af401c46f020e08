"""Transport-wide congestion control feedback (media/twcc/: packet.py, recorder.py).

Reference behaviour is libwebrtc's (remote_estimator_proxy_unittest.cc, transport_feedback_unittest.cc)
and pion's (pion/rtcp transport_layer_cc_test.go, pion/interceptor pkg/twcc/twcc_test.go); each test
taken from them names its source.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.twcc import (
    DEFAULT_MAX_TRACKED_PACKETS,
    MAX_PACKET_BYTES,
    FeedbackPacketBuilder,
    FeedbackRecorder,
    ParsedFeedback,
    encode_status_chunks,
    feedback_interval_s,
    parse_feedback,
)

SSRC = 5000
WRAP_MS = (1 << 24) * 64  # the 24-bit reference time in 64 ms ticks wraps here
TOLERANCE_MS = 0.125 + 0.0005 + 1e-9  # half a 250 us tick, plus rounding arrivals to whole us


def build(recorder: FeedbackRecorder) -> list[ParsedFeedback]:
    return [parse_feedback(packet) for packet in recorder.build(SSRC, SSRC)]


def received(feedback: ParsedFeedback) -> list[tuple[int, float]]:
    return [(seq, arrival) for seq, arrival in feedback.packets if arrival is not None]


def statuses(feedback: ParsedFeedback) -> list[bool]:
    return [arrival is not None for _, arrival in feedback.packets]


def record_all(recorder: FeedbackRecorder, packets: list[tuple[int, float]]) -> None:
    for seq, arrival_ms in packets:
        recorder.record(seq, arrival_ms)


def deltas_ticks(feedback: ParsedFeedback) -> list[int]:
    """Receive deltas in 250 us ticks, the first one from the reference time."""
    times = [feedback.reference_time * 64.0] + [t for _, t in received(feedback)]
    return [round((b - a) * 4) for a, b in zip(times, times[1:], strict=False)]


# --- Byte-exact vectors -----------------------------------------------------------------------

# pion/rtcp transport_layer_cc_test.go, TestTransportLayerCC_Marshal "example1" and "example4".
PION_MARSHAL_EXAMPLE1 = bytes.fromhex("afcd0005 fa17fa17 43032fa0 00990001 3de80217 20019401")
PION_MARSHAL_EXAMPLE4 = bytes.fromhex(
    "afcd0007 fa17fa17 193dd8bb 00040007 10636e01 20074c24 24100c0c 10000003"
)
# Same file, "example5" and "example6": 1-bit status vectors ending in lost packets.
PION_MARSHAL_EXAMPLE5 = bytes.fromhex("afcd0006 fa17fa17 193dd8bb 0001000e 10636d00 ba00100c 0c100002")
PION_MARSHAL_EXAMPLE6 = bytes.fromhex(
    "afcd0007 fa17fa17 43032fa0 9c14000c 75842000 bec0c13f 3b3f5390 3b000003"
)
# Same file, TestTransportLayerCC_Unmarshal "example6": a run-length chunk longer than the count.
PION_UNMARSHAL_EXAMPLE6 = bytes.fromhex(
    "afcd0007 9b74f61f 9371dcbc 853c0009 63f916b3 d5520030 9baa6aaa 7b010901"
)


def test_recorder_reproduces_pion_marshal_example1() -> None:
    recorder = FeedbackRecorder()
    reference_ms = 4057090 * 64
    for i in range(23):  # 23 earlier feedbacks, so this one counts 23
        recorder.record(130 + i, reference_ms - 100 + i)
        assert len(recorder.build(1, 2)) == 1
    recorder.record(153, reference_ms + 37.0)
    assert recorder.build(0xFA17FA17, 0x43032FA0) == [PION_MARSHAL_EXAMPLE1]


def test_recorder_reproduces_pion_marshal_example4() -> None:
    recorder = FeedbackRecorder()
    arrival_ms = 1074030 * 64
    recorder.record(3, arrival_ms - 5)
    recorder.build(1, 2)  # feedback count 0
    for seq, delta_ms in zip(range(4, 11), [19, 9, 9, 4, 3, 3, 4], strict=True):
        arrival_ms += delta_ms
        recorder.record(seq, arrival_ms)
    assert recorder.build(0xFA17FA17, 0x193DD8BB) == [PION_MARSHAL_EXAMPLE4]


def test_status_chunks_match_pion_one_bit_vectors() -> None:
    assert encode_status_chunks([1, 1, 1, 0, 1] + [0] * 9) == [0xBA00]  # example5
    assert encode_status_chunks([1, 1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0]) == [0xBEC0]  # example6
    assert parse_feedback(PION_MARSHAL_EXAMPLE5).chunks == (0xBA00,)


def test_parses_pion_marshal_example6() -> None:
    feedback = parse_feedback(PION_MARSHAL_EXAMPLE6)
    assert (feedback.sender_ssrc, feedback.media_ssrc) == (0xFA17FA17, 0x43032FA0)
    assert (feedback.base_sequence, feedback.reference_time, feedback.feedback_count) == (39956, 7701536, 0)
    assert statuses(feedback) == [True] * 5 + [False] + [True] * 2 + [False] * 4
    expected_us = [48250, 15750, 14750, 15750, 20750, 36000, 14750]
    assert [ticks * 250 for ticks in deltas_ticks(feedback)] == expected_us


def test_parses_pion_unmarshal_example6_with_clamped_run() -> None:
    feedback = parse_feedback(PION_UNMARSHAL_EXAMPLE6)
    assert (feedback.base_sequence, feedback.reference_time, feedback.feedback_count) == (34108, 6551830, 179)
    assert feedback.chunks == (0xD552, 0x0030)  # a run of 48 lost, of which 2 count
    assert statuses(feedback) == [True] * 5 + [False, True, False, False]
    assert [ticks * 250 for ticks in deltas_ticks(feedback)] == [38750, 42500, 26500, 42500, 30750, 66250]
    assert feedback.packets[0] == (34108, 6551830 * 64 + 38.75)


def test_parses_pion_examples_1_and_4() -> None:
    one = parse_feedback(PION_MARSHAL_EXAMPLE1)
    assert one.packets == ((153, 4057090 * 64 + 37.0),)
    four = parse_feedback(PION_MARSHAL_EXAMPLE4)
    assert [seq for seq, _ in four.packets] == list(range(4, 11))
    assert deltas_ticks(four) == [76, 36, 36, 16, 12, 12, 16]


@pytest.mark.parametrize(
    "hex_packet",
    [
        # pion/rtcp TestTransportLayerCC_Unmarshal "example2": status symbol 3, which libwebrtc refuses.
        "afcd0006 fa17fa17 193dd8bb 0174000e 45b15a40 d800f0ff d0000003",
        # "example7": no packet status at all, which libwebrtc refuses.
        "8fcd0004 9acb0442 00000000 00000000 00000000",
        # "example8" and "example9": fewer receive delta bytes than the statuses need.
        "afcd0005 fa17fa17 43032fa0 00990003 3de80217 20039401",
        "afcd0005 fa17fa17 43032fa0 00990002 3de80217 40029401",
        "afcd0005 fa17fa17 43032fa0 00990001",  # shorter than its length field
        "81cd0001 00000001",  # FMT 1 (NACK), not transport feedback
        "",
    ],
)
def test_parser_refuses_malformed_packets(hex_packet: str) -> None:
    with pytest.raises(ValueError):
        parse_feedback(bytes.fromhex(hex_packet))


# --- pion/interceptor pkg/twcc/twcc_test.go: the packets its recorder is expected to build ----------

US = 1000.0  # pion's tests count microseconds; we record milliseconds


def test_pion_build_feedback_packet() -> None:
    # TestBuildFeedbackPacket: 7 small deltas then one of 256 ticks; two run-length chunks.
    recorder = FeedbackRecorder()
    times = [64000, 64250, 64500, 64750, 65000, 65250, 65500, 65500 + 250 * 256]
    record_all(recorder, [(seq, t / US) for seq, t in enumerate(times)])
    [packet] = recorder.build(SSRC, SSRC)
    assert packet == bytes.fromhex(
        "afcd0008 00001388 00001388 00000008 00000100 20074001 00010101 01010101 00000003"
    )
    feedback = parse_feedback(packet)
    assert feedback.chunks == (0x2007, 0x4001)
    assert deltas_ticks(feedback) == [0, 1, 1, 1, 1, 1, 1, 256]


def test_pion_rolling_over_sequence_wrap() -> None:
    # TestBuildFeedbackPacket_Rolling: 65534, 65535, then 0, 4, 5, 6 in a second feedback.
    recorder = FeedbackRecorder()
    record_all(recorder, [(65534, 64.0), (65535, 64.25)])
    assert len(recorder.build(SSRC, SSRC)) == 1
    record_all(recorder, [(0, 64.5), (4, 64.75), (5, 65.0), (6, 65.25)])
    [packet] = recorder.build(SSRC, SSRC)
    assert packet == bytes.fromhex("afcd0006 00001388 00001388 00000007 00000101 d0150201 01010002")
    feedback = parse_feedback(packet)
    assert statuses(feedback) == [True, False, False, False, True, True, True]
    assert deltas_ticks(feedback) == [2, 1, 1, 1]


def test_pion_reordered_packets() -> None:
    # TestReorderedPackets: 7 arrives before 6, so 7's delta is -1 tick (a large delta).
    recorder = FeedbackRecorder()
    seqs = [3, 4, 5, 7, 6, 8, 10, 11, 13, 14]
    record_all(recorder, [(seq, (64000 + 250 * (i + 1)) / US) for i, seq in enumerate(seqs)])
    [packet] = recorder.build(SSRC, SSRC)
    feedback = parse_feedback(packet)
    assert len(packet) == 36  # pion's Length: 8
    assert feedback.chunks == (0xD564, 0xD450)  # 2-bit [1,1,1,1,2,1,0] and [1,1,0,1,1,(0,0)]
    assert deltas_ticks(feedback) == [1, 1, 1, 2, -1, 2, 1, 1, 1, 1]


def test_pion_duplicates_min_input_and_gap_between_feedbacks() -> None:
    # TestDuplicatePackets: 12, 13, 13, 14 -> one run of three.
    recorder = FeedbackRecorder()
    record_all(recorder, [(12, 64.0), (13, 64.0), (13, 64.0), (14, 64.0)])
    assert recorder.build(SSRC, SSRC) == [
        bytes.fromhex("afcd0006 00001388 00001388 000c0003 00000100 20030000 00000003")
    ]
    # TestBuildFeedbackPacket_MinInput
    recorder = FeedbackRecorder()
    recorder.record(0, 64.0)
    assert recorder.build(SSRC, SSRC) == [
        bytes.fromhex("afcd0005 00001388 00001388 00000001 00000100 20010001")
    ]
    # TestBuildFeedbackPacket_MissingPacketsBetweenFeedbacks: the second starts at 4, 3 lost.
    recorder = FeedbackRecorder()
    record_all(recorder, [(0, 64.0), (1, 64.25), (2, 64.5), (3, 64.75)])
    recorder.build(SSRC, SSRC)
    record_all(recorder, [(7, 128.75), (8, 129.0), (9, 129.25)])
    [feedback] = build(recorder)
    assert (feedback.base_sequence, len(feedback.packets), feedback.chunks) == (4, 6, (0xC054,))


# --- libwebrtc remote_estimator_proxy_unittest.cc ------------------------------------------------

BASE_SEQ = 10
BASE_MS = 123.0
MAX_SMALL_DELTA_MS = 0xFF * 0.25


def test_libwebrtc_single_packet_and_duplicates() -> None:
    recorder = FeedbackRecorder()
    recorder.record(BASE_SEQ, BASE_MS)
    recorder.record(BASE_SEQ, BASE_MS + 1000)  # DuplicatedPackets: the first arrival counts
    [feedback] = build(recorder)
    assert feedback.base_sequence == BASE_SEQ
    assert feedback.packets == ((BASE_SEQ, BASE_MS),)
    assert build(recorder) == []  # nothing new


def test_libwebrtc_feedback_with_missing_start() -> None:
    recorder = FeedbackRecorder()
    record_all(recorder, [(BASE_SEQ, BASE_MS), (BASE_SEQ + 1, BASE_MS + 1000)])
    build(recorder)
    recorder.record(BASE_SEQ + 3, BASE_MS + 3000)
    [feedback] = build(recorder)
    assert feedback.base_sequence == BASE_SEQ + 2
    assert feedback.packets == ((BASE_SEQ + 2, None), (BASE_SEQ + 3, BASE_MS + 3000))


def test_libwebrtc_varying_deltas() -> None:
    recorder = FeedbackRecorder()
    times = [BASE_MS, BASE_MS + MAX_SMALL_DELTA_MS, BASE_MS + 2 * MAX_SMALL_DELTA_MS + 1]
    record_all(recorder, list(zip(range(BASE_SEQ, BASE_SEQ + 3), times, strict=True)))
    [feedback] = build(recorder)
    assert received(feedback) == list(zip(range(BASE_SEQ, BASE_SEQ + 3), times, strict=True))


def test_libwebrtc_fragments_a_delta_too_large_for_16_bits() -> None:
    # SendsFragmentedFeedback: 2**16 ticks apart cannot share a packet.
    recorder = FeedbackRecorder()
    record_all(recorder, [(BASE_SEQ, BASE_MS), (BASE_SEQ + 1, BASE_MS + (1 << 16) * 0.25)])
    first, second = build(recorder)
    assert (first.base_sequence, received(first)) == (BASE_SEQ, [(BASE_SEQ, BASE_MS)])
    assert (second.base_sequence, received(second)) == (BASE_SEQ + 1, [(BASE_SEQ + 1, BASE_MS + 16384)])
    assert (first.feedback_count, second.feedback_count) == (0, 1)


def test_libwebrtc_reordering_and_wrap() -> None:
    recorder = FeedbackRecorder()
    record_all(recorder, [(BASE_SEQ, BASE_MS), (62762, BASE_MS + 1000)])
    [feedback] = build(recorder)
    assert feedback.base_sequence == 62762
    assert received(feedback) == [(62762, BASE_MS + 1000), (BASE_SEQ, BASE_MS)]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ((0, 20000, 40000), [(BASE_SEQ + 20009, BASE_MS + 28000), (BASE_SEQ + 40009, BASE_MS + 29000)]),
        ((0, 40000, 20000), [(BASE_SEQ + 40000, BASE_MS + 1000), (BASE_SEQ, BASE_MS)]),
    ],
)
def test_libwebrtc_malformed_sequence_numbers(order: tuple[int, int, int], expected: list) -> None:
    # HandlesMalformedSequenceNumbers / HandlesBackwardsWrappingSequenceNumbers, with libwebrtc's
    # 2**15 cap: only the newest packets that fit survive.
    recorder = FeedbackRecorder(max_tracked_packets=1 << 15)
    for i in range(10):
        for j, offset in enumerate(order):
            recorder.record(BASE_SEQ + offset + i, BASE_MS + (3 * i + j) * 1000)
    assert [packet for feedback in build(recorder) for packet in received(feedback)] == expected


def test_libwebrtc_resends_timestamps_on_reordering() -> None:
    # A packet reported lost arrives: the next feedback starts from it and repeats the later ones.
    recorder = FeedbackRecorder()
    record_all(recorder, [(BASE_SEQ, BASE_MS), (BASE_SEQ + 2, BASE_MS + 2)])
    [first] = build(recorder)
    assert first.packets == ((BASE_SEQ, BASE_MS), (BASE_SEQ + 1, None), (BASE_SEQ + 2, BASE_MS + 2))
    recorder.record(BASE_SEQ + 1, BASE_MS + 1)
    [second] = build(recorder)
    assert second.base_sequence == BASE_SEQ + 1
    assert second.packets == ((BASE_SEQ + 1, BASE_MS + 1), (BASE_SEQ + 2, BASE_MS + 2))


def test_libwebrtc_removes_timestamps_out_of_scope() -> None:
    recorder = FeedbackRecorder()
    timeout_ms = BASE_MS + 500
    recorder.record(BASE_SEQ + 2, BASE_MS)
    assert received(build(recorder)[0]) == [(BASE_SEQ + 2, BASE_MS)]
    recorder.record(BASE_SEQ + 3, timeout_ms)  # BASE_SEQ + 2 times out here
    [feedback] = build(recorder)
    assert (feedback.base_sequence, received(feedback)) == (BASE_SEQ + 3, [(BASE_SEQ + 3, timeout_ms)])
    # Older packets arrive: they are reported, and + 2, forgotten, now reads as lost.
    record_all(recorder, [(BASE_SEQ, BASE_MS - 1), (BASE_SEQ + 1, timeout_ms - 1)])
    [feedback] = build(recorder)
    assert feedback.base_sequence == BASE_SEQ
    assert received(feedback) == [
        (BASE_SEQ, BASE_MS - 1),
        (BASE_SEQ + 1, timeout_ms - 1),
        (BASE_SEQ + 3, timeout_ms),
    ]


@pytest.mark.parametrize(
    ("bitrate_bps", "interval_s"),
    [(None, 0.1), (300_000, 0.05), (0, 0.25), (20_000, 0.25), (80_000, 0.136), (-5, 0.25)],
)
def test_libwebrtc_feedback_interval(bitrate_bps: float | None, interval_s: float) -> None:
    # TimeUntilNextProcessIs*, TwccReportsUse5PercentOfAvailableBandwidth.
    assert feedback_interval_s(bitrate_bps) == pytest.approx(interval_s)


# --- libwebrtc transport_feedback_unittest.cc: sizes of the packets its tests build ---------------


def one_packet(seqs: list[int], times_ms: list[float]) -> bytes:
    builder = FeedbackPacketBuilder(seqs[0], round(times_ms[0] * 1000), 0)
    for seq, t in zip(seqs, times_ms, strict=True):
        assert builder.add_received(seq, round(t * 1000))
    return builder.serialize(SSRC, SSRC)


def padded(size: int) -> int:
    return (size + 3) // 4 * 4


@pytest.mark.parametrize(
    ("name", "seqs", "tick_step", "expected_size"),
    [
        ("OneBitVector", [1, 2, 7, 8, 9, 10, 13], 4, 20 + 2 + 7),
        ("FullOneBitVector", [1, 2, 7, 8, 9, 10, 13, 14], 4, 20 + 2 + 8),
        ("OneBitVectorWrapReceived", [65533, 65534, 65535, 65536, 65537, 65538], 4, 20 + 2 + 6),
        ("OneBitVectorWrapMissing", [65533, 65534, 65537, 65538], 4, 20 + 2 + 4),
        ("TwoBitVector", [1, 2, 6, 7], 256, 20 + 2 + 4 * 2),
        ("TwoBitVectorFull", [1, 2, 6, 7, 8], 256, 20 + 2 * 2 + 5 * 2),
    ],
)
def test_libwebrtc_packet_sizes(name: str, seqs: list[int], tick_step: int, expected_size: int) -> None:
    # FeedbackTester: packet n arrives at n * tick_step ticks of 250 us.
    packet = one_packet(seqs, [seq * tick_step * 0.25 for seq in seqs])
    assert len(packet) == padded(expected_size)
    assert [seq for seq, _ in received(parse_feedback(packet))] == [seq & 0xFFFF for seq in seqs]


@pytest.mark.parametrize(
    ("name", "seqs", "times_ms", "expected_size"),
    [
        ("LargeAndNegativeDeltas", [1, 2, 6, 7, 8], [2, 1, 4, 3, 3 + 64], 20 + 2 + 3 * 2 + 1),
        ("MaxRle", [0, 8191 + 14], [1, 2], 20 + 3 * 2 + 2),
        ("MinRle", [0, 29], [1, 2], 20 + 3 * 2 + 2),
        ("OneToTwoBitVector", [0, 6], [0, 64], 20 + 2 + 1 + 2),
        ("OneToTwoBitVectorSimpleSplit", [0, 7], [0, 64], 20 + 2 * 2 + 1 + 2),
        (
            "OneToTwoBitVectorSplit",
            list(range(22)),
            [1 + i + 63 * (i >= 8) for i in range(22)],
            20 + 6 + 21 + 2,
        ),
    ],
)
def test_libwebrtc_chunk_splits(
    name: str, seqs: list[int], times_ms: list[float], expected_size: int
) -> None:
    packet = one_packet(seqs, times_ms)
    assert len(packet) == padded(expected_size)
    assert received(parse_feedback(packet)) == [(seq, t) for seq, t in zip(seqs, times_ms, strict=True)]


def test_libwebrtc_max_rle_chunks() -> None:
    # 1-bit vector (received + 13 lost), a full run of 8191 lost, then the last received.
    assert parse_feedback(one_packet([0, 8191 + 14], [1, 2])).chunks == (0xA000, 0x1FFF, 0x2001)


def test_libwebrtc_limits() -> None:
    # TransportFeedbackLimits: 65535 statuses at most; deltas within 16 signed bits of ticks.
    builder = FeedbackPacketBuilder(0, 0, 0)
    assert (
        builder.add_received(0, 0)
        and builder.add_received(0x8000, 1000)
        and builder.add_received(0xFFFE, 2000)
    )
    assert not builder.add_received(0xFFFF, 3000)
    builder = FeedbackPacketBuilder(0, 0, 0)
    assert not builder.add_received(1, (0x7FFF + 1) * 250)
    assert builder.add_received(1, 0x7FFF * 250)
    base_us = 1_000_000 * 1000
    builder = FeedbackPacketBuilder(0, base_us, 0)
    assert not builder.add_received(1, base_us - (0x8000 + 1) * 250)
    assert builder.add_received(1, base_us - 0x8000 * 250)
    assert builder.add_received(2, base_us - 250)  # +32767 ticks back up
    assert not builder.add_received(3, base_us - 250 + 0x8000 * 250)


def test_libwebrtc_aliasing_does_not_accumulate() -> None:
    # TransportFeedbackAliasing: 100 deltas of a third of a tick stay within half a tick.
    times_ms = [i * 0.25 / 3 for i in range(100)]
    feedback = parse_feedback(one_packet(list(range(100)), times_ms))
    for (_, reported), actual in zip(received(feedback), times_ms, strict=True):
        assert abs(reported - actual) <= TOLERANCE_MS


# --- Round trips ---------------------------------------------------------------------------------


def test_in_order_round_trip_is_one_run() -> None:
    recorder = FeedbackRecorder()
    packets = [(seq, 1000.0 + seq * 1.7) for seq in range(100, 120)]
    record_all(recorder, packets)
    [feedback] = build(recorder)
    assert feedback.chunks == (0x2000 | 20,)  # run of 20 small deltas
    for (seq, reported), (recorded_seq, t) in zip(received(feedback), packets, strict=True):
        assert seq == recorded_seq and abs(reported - t) <= TOLERANCE_MS


def test_lost_packets_use_a_one_bit_vector() -> None:
    recorder = FeedbackRecorder()
    record_all(recorder, [(seq, 1000.0 + seq) for seq in range(0, 28, 2)])  # every other one lost
    [feedback] = build(recorder)
    assert statuses(feedback) == [True, False] * 13 + [True]
    assert all(chunk & 0xC000 == 0x8000 for chunk in feedback.chunks)  # 1-bit vectors
    assert len(feedback.chunks) == 2


def test_a_large_delta_forces_a_two_bit_vector() -> None:
    recorder = FeedbackRecorder()
    record_all(recorder, [(0, 1000.0), (2, 1001.0), (3, 1200.0)])
    [feedback] = build(recorder)
    assert feedback.chunks == (0xC000 | 0b01_00_01_10 << 6,)
    assert deltas_ticks(feedback)[1:] == [4, 796]


def test_sequence_wraparound_in_one_feedback() -> None:
    recorder = FeedbackRecorder()
    record_all(recorder, [(65534, 10.0), (65535, 11.0), (1, 12.0)])
    [feedback] = build(recorder)
    assert feedback.base_sequence == 65534
    assert feedback.packets == ((65534, 10.0), (65535, 11.0), (0, None), (1, 12.0))


def test_reference_time_wraps_at_24_bits() -> None:
    recorder = FeedbackRecorder()
    recorder.record(0, WRAP_MS - 64)
    [before] = build(recorder)
    recorder.record(1, WRAP_MS + 1)
    [after] = build(recorder)
    assert (before.reference_time, after.reference_time) == (0xFFFFFF, 0)
    assert before.packets == ((0, WRAP_MS - 64.0),)
    assert after.packets == ((1, 1.0),)


def test_deltas_at_the_edge_of_16_bits() -> None:
    start = 64_000.0  # a multiple of 64 ms: the first delta is zero
    for step_ms, packet_count in [(8191.75, 1), (8192.0, 2), (-8192.0, 1), (-8192.25, 2)]:
        recorder = FeedbackRecorder()
        record_all(recorder, [(0, start), (1, start + step_ms)])
        feedbacks = build(recorder)
        assert len(feedbacks) == packet_count, step_ms
        assert [packet for feedback in feedbacks for packet in received(feedback)] == [
            (0, start),
            (1, start + step_ms),
        ]
        if packet_count == 2:
            assert feedbacks[1].base_sequence == 1


def test_many_packets_split_to_fit_the_packet_size() -> None:
    recorder = FeedbackRecorder()
    rng = random.Random(3)
    arrival_ms, recorded = 5000.0, {}
    for seq in range(3000):
        arrival_ms += rng.choice([0.5, 1.0, 70.0, 150.0])  # many large deltas
        if rng.random() < 0.2:
            continue  # lost
        recorder.record(seq, arrival_ms)
        recorded[seq] = arrival_ms
    feedbacks = recorder.build(SSRC, SSRC)
    assert len(feedbacks) > 2
    assert all(len(packet) <= MAX_PACKET_BYTES for packet in feedbacks)
    parsed = [parse_feedback(packet) for packet in feedbacks]
    next_base = parsed[0].base_sequence
    reported = {}
    for feedback in parsed:
        assert feedback.base_sequence == next_base  # contiguous: nothing skipped, nothing twice
        next_base = (feedback.base_sequence + len(feedback.packets)) & 0xFFFF
        reported.update(received(feedback))
    assert reported.keys() == recorded.keys()
    assert all(abs(reported[seq] - t) <= TOLERANCE_MS for seq, t in recorded.items())


def test_feedback_count_wraps_at_8_bits() -> None:
    recorder = FeedbackRecorder()
    counts = []
    for seq in range(300):
        recorder.record(seq, 1000.0 + seq)
        counts += [feedback.feedback_count for feedback in build(recorder)]
    assert counts == [i % 256 for i in range(300)]


def test_nonsense_input_gives_valid_packets_and_bounded_memory() -> None:
    recorder = FeedbackRecorder()
    rng = random.Random(11)
    seq, arrival_ms = 0, 1e6
    for i in range(20_000):
        seq = (seq + rng.choice([1, 1, 2, 0, -1, 30000, -30000, 32768, 40000])) & 0xFFFF
        arrival_ms += rng.choice([0.3, 1.0, -0.7, -5000.0, 9000.0, 20000.0])
        recorder.record(seq, rng.choice([arrival_ms] * 20 + [float("nan"), float("inf")]))
        assert recorder.tracked_packets <= DEFAULT_MAX_TRACKED_PACKETS
        if i % 37 == 0:
            for packet in recorder.build(SSRC, SSRC):
                assert len(packet) <= MAX_PACKET_BYTES
                assert 0 < len(parse_feedback(packet).packets) <= DEFAULT_MAX_TRACKED_PACKETS


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 0xFFFF), st.floats(-1e7, 1e7, allow_nan=False), st.booleans()),
        max_size=200,
    )
)
def test_any_input_gives_valid_small_packets(operations: list[tuple[int, float, bool]]) -> None:
    recorder = FeedbackRecorder(max_tracked_packets=64, max_packet_bytes=64)
    for seq, arrival_ms, build_now in operations:
        recorder.record(seq, arrival_ms)
        assert recorder.tracked_packets <= 64
        if build_now:
            for packet in recorder.build(SSRC, SSRC):
                assert len(packet) <= 64
                assert 0 < len(parse_feedback(packet).packets) <= 64


@settings(max_examples=150, deadline=None)
@given(
    start=st.integers(0, 0xFFFF),
    steps=st.lists(
        st.tuples(
            st.integers(1, 4),
            st.floats(0, 40) | st.just(9000.0),
            st.booleans(),
            st.booleans(),
            st.booleans(),
        ),
        min_size=1,
        max_size=250,
    ),
    max_packet_bytes=st.sampled_from([MAX_PACKET_BYTES, 64]),
)
def test_every_recorded_packet_is_reported_with_its_first_arrival(
    start: int, steps: list[tuple[int, float, bool, bool, bool]], max_packet_bytes: int
) -> None:
    # Gaps (loss), neighbours swapped (reordering), duplicates, pauses longer than a 16-bit
    # delta, small packets that must split, builds at random points.
    seqs, seq = [], start
    for step, *_ in steps:
        seq += step
        seqs.append(seq & 0xFFFF)
    for i, (_, _, swap, _, _) in enumerate(steps[:-1]):
        if swap:
            seqs[i], seqs[i + 1] = seqs[i + 1], seqs[i]
    recorder, first_arrival, reports = FeedbackRecorder(max_packet_bytes=max_packet_bytes), {}, []
    arrival_ms = 1000.0
    for seq, (_, wait_ms, _, duplicate, build_now) in zip(seqs, steps, strict=True):
        arrival_ms += wait_ms
        for _ in range(2 if duplicate else 1):
            recorder.record(seq, arrival_ms)
            first_arrival.setdefault(seq, arrival_ms)
        if build_now:
            reports += build(recorder)
    reports += build(recorder)
    reported_received = {(seq, t) for feedback in reports for seq, t in received(feedback)}
    for seq, t in reported_received:
        assert abs(first_arrival[seq] - t) <= TOLERANCE_MS
    assert {seq for seq, _ in reported_received} == first_arrival.keys()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20) | st.integers(8000, 17000), st.integers(-300, 300)), max_size=60)
)
def test_loss_runs_encode_as_symbol_by_symbol(packets: list[tuple[int, int]]) -> None:
    # The builder appends a loss run in one go; libwebrtc's chunks come from one symbol at a time.
    builder = FeedbackPacketBuilder(0, 0, 0, max_bytes=1 << 16)
    assert builder.add_received(0, 0)
    symbols, sequence, ticks = [1], 0, 0
    for gap, step in packets:
        if sequence + gap + 1 >= 20_000:
            break  # enough to cross two full runs of 8191, and fast
        sequence += gap + 1
        ticks += step
        assert builder.add_received(sequence, ticks * 250)
        symbols += [0] * gap + [1 if 0 <= step <= 0xFF else 2]
    assert list(parse_feedback(builder.serialize(SSRC, SSRC)).chunks) == encode_status_chunks(symbols)
