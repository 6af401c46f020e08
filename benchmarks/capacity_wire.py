"""What the capacity suite's clients receive, read off the wire: frames completed and packets
counted from the plain RTP datagrams (media.aiortc_internals.take_received_rtp), with no
``RtpPacket`` a packet, no depayloading and no decode.

- :func:`rtp_header` reads a datagram's header: payload type, marker, sequence number,
  timestamp, where the payload starts, and its header-extension block.
- :func:`starts_frame` tells a frame's first payload by the codec's own marks (VP8's payload
  descriptor, H.264's NAL units): sequence numbers alone cannot say whether a frame's first
  packets were lost (nor, after a whole frame was lost, that the next one is whole).
- :class:`FrameAssembler` completes a video stream's frames on the marker bit (a frame with a
  sequence gap, or whose first packet came without its start, is dropped, as a lost frame) and
  hands each one's payloads and the
  ``abs-capture-time`` its first packet carried to a sink (benchmarks.capacity_media.FrameProbe).
- :class:`PacketTally` notes when each packet came (a voice heard, a preview not looked at).
- :class:`WireReceiver` sorts one peer's datagrams by payload type between them.
"""

from __future__ import annotations

import bisect
import struct
import time
from collections.abc import Callable, Iterable

from aiortc.rtp import unpack_header_extensions

_HEADER = struct.Struct("!BBHL")  # V/P/X/CC, M/PT, sequence number, timestamp
_EXTENSION = struct.Struct("!HH")  # profile, length in 32-bit words

RtpHeader = tuple[int, bool, int, int, int, int, bytes]


def rtp_header(data: bytes) -> RtpHeader | None:
    """(payload type, marker, sequence number, timestamp, payload start, extension profile,
    extension block) of an RTP datagram, or None if it is too short for what its header says."""
    if len(data) < 12:
        return None
    first, second, sequence, timestamp = _HEADER.unpack_from(data)
    start = 12 + 4 * (first & 0x0F)
    profile, block = 0, b""
    if first & 0x10:
        if len(data) < start + 4:
            return None
        profile, words = _EXTENSION.unpack_from(data, start)
        block = data[start + 4 : start + 4 + 4 * words]
        start += 4 + 4 * words
    if len(data) < start:
        return None
    return second & 0x7F, bool(second & 0x80), sequence, timestamp, start, profile, block


def extension_value(profile: int, block: bytes, ident: int) -> bytes | None:
    """Element ``ident`` of a header-extension block (RFC 8285, one- or two-byte form), or None
    (also for a malformed block)."""
    try:
        elements = unpack_header_extensions(profile, block)
    except ValueError:
        return None
    return next((value for x_id, value in elements if x_id == ident), None)


# H.264 NAL unit types that open an access unit ahead of its first slice: SEI, SPS, PPS, delimiter.
_AU_PREFIX = frozenset((6, 7, 8, 9))


def starts_frame(codec: str, payload: bytes) -> bool:
    """Whether an RTP payload of ``codec`` ("VP8", "H264") is a frame's first.

    VP8 (RFC 7741): the payload descriptor's S bit with partition index 0. H.264 (RFC 6184): the
    payload begins a NAL unit (a single one, the first of a STAP-A, or an FU-A with its start bit)
    that opens an access unit: SEI, SPS, PPS or a delimiter, or a slice whose first macroblock is
    the picture's first (first_mb_in_slice 0: the slice header's first bit is 1). Another codec:
    True (nothing to tell by).
    """
    if not payload:
        return False
    if codec == "VP8":
        return payload[0] & 0x17 == 0x10  # S set, PID 0
    if codec != "H264":
        return True
    kind, body = payload[0] & 0x1F, 1  # a single NAL unit: its type, where its payload starts
    if kind == 24:  # STAP-A: its first unit, after a 2-byte size
        if len(payload) < 4:
            return False
        kind, body = payload[3] & 0x1F, 4
    elif kind == 28:  # FU-A: a unit's first fragment only
        if len(payload) < 2 or not payload[1] & 0x80:
            return False
        kind, body = payload[1] & 0x1F, 2
    elif not 1 <= kind <= 23:
        return False  # STAP-B, MTAP, FU-B: not sent by the packetizers here
    if kind in _AU_PREFIX:
        return True
    return kind in (1, 5) and len(payload) > body and bool(payload[body] & 0x80)


FrameSink = Callable[[int, list[bytes], int | None, float], None]  # timestamp, payloads, capture NTP, now


class FrameAssembler:
    """One video stream's frames, completed on the marker bit, for ``sink``.

    Args:
        abs_capture_time_id: the header-extension id of abs-capture-time (None: not read).

    ``codec`` ("VP8", "H264"; settable, known once the answer came): a frame counts as whole only
    if its first packet is a frame's start (:func:`starts_frame`); None: by sequence numbers alone.
    """

    codec: str | None = None

    def __init__(self, sink: FrameSink, abs_capture_time_id: int | None) -> None:
        self.sink = sink
        self.ident = abs_capture_time_id
        self.incomplete = 0  # frames dropped for a sequence gap
        self.ssrc: int | None = None  # the stream's, from its first packet (for REMB)
        self._timestamp: int | None = None
        self._first = 0
        self._payloads: list[bytes] = []
        self._captured: int | None = None
        self._started: bool | None = None  # whether the frame's first packet that came is its start

    def add(self, data: bytes, header: RtpHeader) -> None:
        _, marker, sequence, timestamp, start, profile, block = header
        if self.ssrc is None:
            self.ssrc = int.from_bytes(data[8:12], "big")
        if timestamp != self._timestamp:
            if self._payloads:
                self.incomplete += 1  # the last one's end never came
            self._timestamp, self._first, self._payloads, self._captured = timestamp, sequence, [], None
            self._started = None
        if self._captured is None and self.ident is not None and block:
            value = extension_value(profile, block, self.ident)
            if value is not None and len(value) >= 8:
                self._captured = int.from_bytes(value[:8], "big")
        end = len(data) - (data[-1] if data[0] & 0x20 else 0)  # RTP padding
        self._payloads.append(data[start:end])
        if self._started is None:
            self._started = self.codec is None or starts_frame(self.codec, data[start:end])
        if marker:
            payloads, self._payloads = self._payloads, []
            if self._started and (sequence - self._first) & 0xFFFF == len(payloads) - 1:
                self.sink(timestamp, payloads, self._captured, time.time())
            else:
                self.incomplete += 1


class PacketTally:
    """When each packet came (wall time), for a rate over a window."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def add(self, data: bytes, header: RtpHeader) -> None:
        self.times.append(time.time())

    def rate(self, t0: float, t1: float) -> float:
        count = bisect.bisect_left(self.times, t1) - bisect.bisect_left(self.times, t0)
        return count / (t1 - t0)

    def prune(self, before: float) -> None:
        del self.times[: bisect.bisect_left(self.times, before)]


class WireReceiver:
    """One peer's received RTP, by payload type: ``audio`` takes those in ``audio_types``,
    ``video`` the rest (a peer here receives one video stream and one voice)."""

    def __init__(
        self, video: FrameAssembler | PacketTally, audio: PacketTally, audio_types: Iterable[int]
    ) -> None:
        self.video = video
        self.audio = audio
        self.audio_types = frozenset(audio_types)  # settable: known once the answer came
        self.malformed = 0

    def __call__(self, data: bytes) -> None:
        header = rtp_header(data)
        if header is None:
            self.malformed += 1
        elif header[0] in self.audio_types:
            self.audio.add(data, header)
        else:
            self.video.add(data, header)
