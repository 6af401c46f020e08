"""Transport-wide congestion control feedback packets (RTCP RTPFB, FMT=15): writing and reading.

Wire format: draft-holmer-rmcat-transport-wide-cc-extensions-01 section 3.1; the encoding
follows libwebrtc (transport_feedback.cc). Pure: no clock, no I/O.
"""

from __future__ import annotations

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
