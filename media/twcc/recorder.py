"""What a transport-wide feedback reports, and when (libwebrtc's remote_estimator_proxy.cc,
packet_arrival_map.cc). Pure: the caller passes arrival times and calls ``build()`` from a timer
it owns, every ``feedback_interval_s()``.
"""

from __future__ import annotations

import math

from media.twcc.packet import MAX_PACKET_BYTES, FeedbackPacketBuilder

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
