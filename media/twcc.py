"""Transport-wide congestion control feedback, receiver side (RTCP RTPFB, FMT=15).

Chromium's send-side estimator (GoogCC) ramps up fast only when told, for every packet it sent
with a transport-wide sequence number, when it arrived or that it did not. Wire format:
draft-holmer-rmcat-transport-wide-cc-extensions-01 section 3.1; what is reported and how it is
encoded follow libwebrtc (transport_feedback.cc, remote_estimator_proxy.cc,
packet_arrival_map.cc). Pure: the caller passes arrival times and calls ``build()`` from a timer
it owns, every ``feedback_interval_s()``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

RTCP_RTPFB = 205
TRANSPORT_FEEDBACK_FMT = 15

DELTA_TICK_US = 250  # receive deltas count 250 us ticks
REFERENCE_TICK_US = 64_000  # the reference time counts 64 ms ticks ...
REFERENCE_TIME_MODULO = 1 << 24  # ... in 24 bits, so it wraps every ~12.4 days
HEADER_BYTES = 20  # RTCP header, two SSRCs, base seq, status count, reference time, fb count
MAX_STATUS_COUNT = 0xFFFF

# Packet status symbols; a symbol's value is also the size of its receive delta in bytes.
NOT_RECEIVED, SMALL_DELTA, LARGE_DELTA = 0, 1, 2

RUN_LENGTH_CAPACITY, ONE_BIT_CAPACITY, TWO_BIT_CAPACITY = 0x1FFF, 14, 7  # symbols per chunk kind

# 1200 bytes plus SRTP's 14 and IPv6+UDP's 48 fit the 1280-byte minimum IPv6 MTU. libwebrtc
# only caps a feedback at the 256 KiB the length field allows; a datagram that large would be
# fragmented or refused, so we split sooner.
MAX_PACKET_BYTES = 1200
# Arrivals kept to resend after reordering (libwebrtc keeps 500 ms and at most 2**15 packets).
# 8192 is ~16,000 packets/s over the 500 ms window, well above a browser's upload, and a
# quarter of libwebrtc's memory when a peer sends garbage.
DEFAULT_BACK_WINDOW_MS = 500.0
DEFAULT_MAX_TRACKED_PACKETS = 1 << 13

DEFAULT_INTERVAL_S, MIN_INTERVAL_S, MAX_INTERVAL_S = 0.1, 0.05, 0.25
_REPORT_BITS = (20 + 8 + 10 + 30) * 8  # IPv4 + UDP + SRTP + an average report, libwebrtc's figure


def feedback_interval_s(bitrate_bps: float | None = None) -> float:
    """Seconds between ``build()`` calls as libwebrtc picks them: 5% of ``bitrate_bps``, within
    50-250 ms, 100 ms while unknown. libwebrtc passes its send target; the media rate received on
    the transport is a fair stand-in."""
    if bitrate_bps is None or math.isnan(bitrate_bps):
        return DEFAULT_INTERVAL_S
    budget_bps = 0.05 * bitrate_bps
    if budget_bps <= _REPORT_BITS / MAX_INTERVAL_S:  # also keeps zero and negatives out of the division
        return MAX_INTERVAL_S
    return max(_REPORT_BITS / budget_bps, MIN_INTERVAL_S)


def _run_length_chunk(symbol: int, length: int) -> int:
    return (symbol << 13) | length


def _one_bit_chunk(symbols: list[int]) -> int:
    return 0x8000 | sum(symbol << (ONE_BIT_CAPACITY - 1 - i) for i, symbol in enumerate(symbols))


def _two_bit_chunk(symbols: list[int]) -> int:
    return 0xC000 | sum(symbol << 2 * (TWO_BIT_CAPACITY - 1 - i) for i, symbol in enumerate(symbols))


class _PendingChunk:
    """The chunk being filled (libwebrtc's LastChunk).

    Symbols go in while some chunk kind can still hold them all; when none can, the most
    compact kind is emitted: a run, else a 14-entry 1-bit vector, else a 7-entry 2-bit vector
    (which may leave symbols behind). Only the first 14 symbols are stored: beyond that the
    chunk is a run.
    """

    __slots__ = ("all_same", "has_large", "size", "symbols")

    def __init__(self, symbols: list[int] | None = None, size: int | None = None) -> None:
        self.reset(symbols or [], size)

    def reset(self, symbols: list[int], size: int | None = None) -> None:
        self.symbols = symbols
        self.size = len(symbols) if size is None else size
        self.all_same = all(symbol == symbols[0] for symbol in symbols)
        self.has_large = LARGE_DELTA in symbols

    def can_add(self, symbol: int) -> bool:
        if self.size < TWO_BIT_CAPACITY:
            return True
        if self.size < ONE_BIT_CAPACITY and not self.has_large and symbol != LARGE_DELTA:
            return True
        return self.size < RUN_LENGTH_CAPACITY and self.all_same and self.symbols[0] == symbol

    def add(self, symbol: int) -> None:
        if self.size < ONE_BIT_CAPACITY:
            self.symbols.append(symbol)
        self.size += 1
        self.all_same = self.all_same and symbol == self.symbols[0]
        self.has_large = self.has_large or symbol == LARGE_DELTA

    def emit(self) -> int:
        """Encode a full chunk and keep what it could not hold."""
        if self.all_same:
            chunk = _run_length_chunk(self.symbols[0], self.size)
            self.reset([])
        elif self.size == ONE_BIT_CAPACITY:
            chunk = _one_bit_chunk(self.symbols)
            self.reset([])
        else:
            chunk = _two_bit_chunk(self.symbols[:TWO_BIT_CAPACITY])
            self.reset(self.symbols[TWO_BIT_CAPACITY : self.size])
        return chunk

    def encode_last(self) -> int:
        """Encode what is left at the end of a packet (a partly filled vector is zero-padded)."""
        if self.all_same:
            return _run_length_chunk(self.symbols[0], self.size)
        if self.size <= TWO_BIT_CAPACITY:
            return _two_bit_chunk(self.symbols)
        return _one_bit_chunk(self.symbols)


def _add_symbol(pending: _PendingChunk, symbol: int) -> list[int]:
    emitted = [] if pending.can_add(symbol) else [pending.emit()]
    pending.add(symbol)
    return emitted


def _add_missing(pending: _PendingChunk, count: int) -> list[int]:
    """Append ``count`` NOT_RECEIVED symbols without looping over long runs of them."""
    emitted: list[int] = []
    if pending.size and not (pending.all_same and pending.symbols[0] == NOT_RECEIVED):
        while count and pending.can_add(NOT_RECEIVED):  # at most 14 times
            pending.add(NOT_RECEIVED)
            count -= 1
        if not count:
            return emitted
        emitted.append(pending.emit())  # leaves it empty: see the capacities in can_add
    full_runs, rest = divmod(pending.size + count, RUN_LENGTH_CAPACITY)
    emitted += [_run_length_chunk(NOT_RECEIVED, RUN_LENGTH_CAPACITY)] * full_runs
    pending.reset([NOT_RECEIVED] * min(rest, ONE_BIT_CAPACITY), rest)
    return emitted


def encode_status_chunks(symbols: list[int]) -> list[int]:
    """The packet status chunks libwebrtc writes for ``symbols``, as 16-bit words."""
    pending, chunks = _PendingChunk(), []
    for symbol in symbols:
        chunks += _add_symbol(pending, symbol)
    return chunks + ([pending.encode_last()] if pending.size else [])


def _delta_ticks(delta_us: int) -> int:
    # Half away from zero, as libwebrtc rounds.
    half = DELTA_TICK_US // 2
    return (delta_us + half) // DELTA_TICK_US if delta_us >= 0 else -((half - delta_us) // DELTA_TICK_US)


class FeedbackPacketBuilder:
    """One feedback packet being filled (libwebrtc's rtcp::TransportFeedback).

    ``base_sequence`` and the sequence numbers added are unwrapped (they only grow); the
    reference time is the 64 ms tick at or before ``reference_us``, the first arrival reported.
    """

    def __init__(
        self,
        base_sequence: int,
        reference_us: int,
        feedback_count: int,
        max_bytes: int = MAX_PACKET_BYTES,
    ) -> None:
        self.base_sequence = base_sequence
        self.reference_time = reference_us // REFERENCE_TICK_US
        self.feedback_count = feedback_count & 0xFF
        self._max_bytes = max_bytes
        self._next_sequence = base_sequence
        # The time the rounded deltas add up to, so rounding errors never accumulate.
        self._last_us = self.reference_time * REFERENCE_TICK_US
        self._chunks: list[int] = []
        self._pending = _PendingChunk()
        self._deltas = bytearray()

    @property
    def status_count(self) -> int:
        return self._next_sequence - self.base_sequence

    def add_received(self, sequence: int, arrival_us: int) -> bool:
        """Report ``sequence`` received at ``arrival_us`` and those skipped since the last as lost.

        False, with nothing changed, if it does not fit: a sequence number not after the last
        one, a delta beyond 16 signed bits of 250 us (+-8.19 s), more than 65535 statuses, or
        more than ``max_bytes``. The caller then starts a new packet.
        """
        missing = sequence - self._next_sequence
        if missing < 0 or self.status_count + missing + 1 > MAX_STATUS_COUNT:
            return False
        ticks = _delta_ticks(arrival_us - self._last_us)
        if not -0x8000 <= ticks <= 0x7FFF:
            return False
        symbol = SMALL_DELTA if 0 <= ticks <= 0xFF else LARGE_DELTA
        pending = _PendingChunk(list(self._pending.symbols), self._pending.size)  # a refusal leaves no trace
        emitted = _add_missing(pending, missing) + _add_symbol(pending, symbol)
        chunk_count = len(self._chunks) + len(emitted) + (1 if pending.size else 0)
        size = HEADER_BYTES + 2 * chunk_count + len(self._deltas) + symbol
        if (size + 3) & ~3 > self._max_bytes:
            return False
        self._pending = pending
        self._chunks += emitted
        self._deltas += struct.pack("!B" if symbol == SMALL_DELTA else "!h", ticks)
        self._last_us += ticks * DELTA_TICK_US
        self._next_sequence = sequence + 1
        return True

    def serialize(self, sender_ssrc: int, media_ssrc: int) -> bytes:
        """The RTCP packet, zero-padded to 32 bits with the pad count in its last byte."""
        if not self.status_count:
            raise ValueError("a feedback packet needs at least one packet status")
        chunks = self._chunks + ([self._pending.encode_last()] if self._pending.size else [])
        base, reference_time = self.base_sequence & 0xFFFF, self.reference_time % REFERENCE_TIME_MODULO
        body = struct.pack("!IIHH", sender_ssrc, media_ssrc, base, self.status_count)
        body += struct.pack(f"!I{len(chunks)}H", reference_time << 8 | self.feedback_count, *chunks)
        body += self._deltas
        padding = -len(body) % 4
        if padding:
            body += bytes(padding - 1) + bytes([padding])
        first_byte = 0x80 | (0x20 if padding else 0) | TRANSPORT_FEEDBACK_FMT
        return struct.pack("!BBH", first_byte, RTCP_RTPFB, len(body) // 4) + body


class FeedbackRecorder:
    """Arrival times of one transport's packets, and the feedback packets that report them.

    Call ``record()`` for every packet carrying the transport-wide sequence number extension,
    then ``build()`` periodically. Arrival times are milliseconds on any clock that does not
    jump (``time.monotonic() * 1000``); the sender only uses their differences.
    """

    def __init__(
        self,
        *,
        back_window_ms: float = DEFAULT_BACK_WINDOW_MS,
        max_tracked_packets: int = DEFAULT_MAX_TRACKED_PACKETS,
        max_packet_bytes: int = MAX_PACKET_BYTES,
    ) -> None:
        if not 1 <= max_tracked_packets <= 1 << 15:
            raise ValueError("max_tracked_packets must be within 1..32768")
        if max_packet_bytes < 64:
            raise ValueError("max_packet_bytes below 64 cannot hold a long loss run")
        self._back_window_us = round(back_window_ms * 1000)
        self._max_tracked = max_tracked_packets
        self._max_packet_bytes = max_packet_bytes
        # Unwrapped sequence number -> arrival in us, for received packets in [_begin, _end).
        # Numbers in that range missing from the dict were not received.
        self._arrivals: dict[int, int] = {}
        self._begin = 0
        self._end = 0
        self._report_from: int | None = None  # first sequence number the next build() reports
        self._last_sequence: int | None = None  # unwrapped, to unwrap the next one
        self.feedback_count = 0  # of the next packet built, 8 bits

    @property
    def tracked_packets(self) -> int:
        """Arrivals held in memory (at most ``max_tracked_packets``)."""
        return len(self._arrivals)

    def record(self, sequence_number: int, arrival_ms: float) -> None:
        """Note that the packet with this 16-bit transport-wide sequence number arrived."""
        if not math.isfinite(arrival_ms):
            return
        arrival_us = round(arrival_ms * 1000)
        sequence = self._unwrap(sequence_number & 0xFFFF)
        if self._report_from is None:
            self._begin = self._end = sequence
        elif self._report_from >= self._end:
            # Everything held was reported: forget what is older than the back window. Until
            # then it is kept, to be reported again if an older packet arrives late.
            self._remove_old(sequence, arrival_us - self._back_window_us)
        if self._report_from is None or sequence < self._report_from:
            # A packet older than those reported (reported lost, or a duplicate): report again
            # from it, so the sender learns it arrived after all.
            self._report_from = sequence
        if sequence in self._arrivals:
            return  # the first arrival is the one that tells about the path
        self._add(sequence, arrival_us)
        self._report_from = max(self._report_from, self._begin)

    def build(self, sender_ssrc: int, media_ssrc: int) -> list[bytes]:
        """Feedback for the packets recorded since the last build: zero or more RTCP packets.

        A packet ends where the next arrival is too far in time from the previous one (beyond
        +-8.19 s) or it would outgrow ``max_packet_bytes``; the next one takes over there.
        """
        packets = []
        end = self._end
        while self._report_from is not None and self._report_from < end:
            builder = self._build_one(self._report_from, end)
            if builder is None:
                break
            packets.append(builder.serialize(sender_ssrc, media_ssrc))
        return packets

    def _build_one(self, begin: int, end: int) -> FeedbackPacketBuilder | None:
        builder = None
        next_sequence = begin
        for sequence in range(max(begin, self._begin), min(end, self._end)):
            arrival_us = self._arrivals.get(sequence)
            if arrival_us is None:
                continue
            if builder is None:
                # The base is the first sequence number not yet reported, received or not (at
                # most max_tracked_packets back); the reference time is the first arrival's.
                builder = FeedbackPacketBuilder(
                    begin, arrival_us, self.feedback_count, self._max_packet_bytes
                )
                self.feedback_count = (self.feedback_count + 1) & 0xFF
                builder.add_received(sequence, arrival_us)  # a new packet holds one, see __init__'s limits
            elif not builder.add_received(sequence, arrival_us):
                break
            next_sequence = sequence + 1
        self._report_from = next_sequence
        return builder

    def _unwrap(self, sequence_number: int) -> int:
        if self._last_sequence is None:
            unwrapped = sequence_number
        else:
            step = (sequence_number - self._last_sequence) & 0xFFFF
            unwrapped = self._last_sequence + (step - 0x10000 if step >= 0x8000 else step)
        self._last_sequence = unwrapped
        return unwrapped

    def _add(self, sequence: int, arrival_us: int) -> None:
        # libwebrtc's PacketArrivalTimeMap::AddPacket: the range never exceeds the cap, and
        # newer packets win over older ones.
        if sequence < self._begin:
            if self._end - sequence > self._max_tracked:
                return
            self._begin = sequence
        elif sequence >= self._end:
            new_end = sequence + 1
            if new_end >= self._end + self._max_tracked:
                self._arrivals.clear()
                self._begin = sequence
            elif new_end - self._begin > self._max_tracked:  # drop the oldest, fewer than the cap
                for old in range(self._begin, new_end - self._max_tracked):
                    self._arrivals.pop(old, None)
                self._begin = new_end - self._max_tracked
            self._end = new_end
        self._arrivals[sequence] = arrival_us

    def _remove_old(self, sequence: int, arrival_limit_us: int) -> None:
        check_to = min(sequence, self._end)
        while self._begin < check_to:
            arrival_us = self._arrivals.get(self._begin)
            if arrival_us is not None and arrival_us > arrival_limit_us:
                break
            self._arrivals.pop(self._begin, None)
            self._begin += 1


@dataclass(frozen=True, slots=True)
class ParsedFeedback:
    """A transport-wide feedback packet as read back, for tests and debugging."""

    sender_ssrc: int
    media_ssrc: int
    base_sequence: int
    reference_time: int  # 24 bits, in 64 ms ticks
    feedback_count: int
    chunks: tuple[int, ...]
    packets: tuple[tuple[int, float | None], ...]
    """(16-bit sequence number, arrival in ms on the reference clock, or None if not received)."""


def _decode_chunk(chunk: int) -> list[int]:
    if not chunk & 0x8000:
        return [(chunk >> 13) & 0x3] * (chunk & RUN_LENGTH_CAPACITY)
    if not chunk & 0x4000:
        return [(chunk >> (ONE_BIT_CAPACITY - 1 - i)) & 0x1 for i in range(ONE_BIT_CAPACITY)]
    return [(chunk >> 2 * (TWO_BIT_CAPACITY - 1 - i)) & 0x3 for i in range(TWO_BIT_CAPACITY)]


def parse_feedback(data: bytes) -> ParsedFeedback:
    """Read the transport-wide feedback packet at the start of ``data`` (the rest is ignored).

    Raises ValueError where libwebrtc's parser refuses the packet, and also for packets
    without receive deltas (a feedback-on-request variant we never send).
    """
    first_byte, packet_type, length_words = struct.unpack_from("!BBH", data.ljust(4, b"\0"))
    end = (length_words + 1) * 4
    if first_byte >> 6 != 2 or packet_type != RTCP_RTPFB or first_byte & 0x1F != TRANSPORT_FEEDBACK_FMT:
        raise ValueError("not a transport-wide feedback packet")
    if len(data) < end:
        raise ValueError("shorter than its length field says")
    if first_byte & 0x20:
        padding = data[end - 1]
        if not 0 < padding <= end - 4:
            raise ValueError("bad padding count")
        end -= padding
    if end < HEADER_BYTES + 2:
        raise ValueError("too short for a feedback packet")
    sender_ssrc, media_ssrc, base, status_count, word = struct.unpack_from("!IIHHI", data, 4)
    if not status_count:
        raise ValueError("empty feedback")
    position, chunks, symbols = HEADER_BYTES, list[int](), list[int]()
    while len(symbols) < status_count:
        if position + 2 > end:
            raise ValueError("truncated packet status chunks")
        (chunk,) = struct.unpack_from("!H", data, position)
        position += 2
        chunks.append(chunk)
        symbols += _decode_chunk(chunk)[: status_count - len(symbols)]
    reference_time = word >> 8
    ticks = 0
    packets: list[tuple[int, float | None]] = []
    for index, symbol in enumerate(symbols):
        sequence = (base + index) & 0xFFFF
        if symbol == NOT_RECEIVED:
            packets.append((sequence, None))
            continue
        if symbol not in (SMALL_DELTA, LARGE_DELTA):
            raise ValueError("reserved packet status symbol 3")
        if position + symbol > end:
            raise ValueError("truncated receive deltas")
        ticks += data[position] if symbol == SMALL_DELTA else struct.unpack_from("!h", data, position)[0]
        position += symbol
        # Exact: both terms are whole multiples of 250 us.
        packets.append((sequence, (reference_time * REFERENCE_TICK_US + ticks * DELTA_TICK_US) / 1000))
    feedback_count = word & 0xFF
    return ParsedFeedback(
        sender_ssrc, media_ssrc, base, reference_time, feedback_count, tuple(chunks), tuple(packets)
    )
