"""Transport-wide congestion control feedback, receiver side (RTCP RTPFB, FMT=15).

Chromium's send-side estimator (GoogCC) ramps up fast only when told, for every packet it sent
with a transport-wide sequence number, when it arrived or that it did not. ``packet`` writes and
reads the feedback packets; ``recorder`` keeps the arrivals and decides what each one reports.
Wire format: draft-holmer-rmcat-transport-wide-cc-extensions-01 section 3.1; what is reported
and how it is encoded follow libwebrtc (transport_feedback.cc, remote_estimator_proxy.cc,
packet_arrival_map.cc). Pure: the caller passes arrival times and calls ``build()`` from a timer
it owns, every ``feedback_interval_s()``.
"""

from media.twcc.packet import (
    MAX_PACKET_BYTES,
    FeedbackPacketBuilder,
    ParsedFeedback,
    encode_status_chunks,
    parse_feedback,
)
from media.twcc.recorder import (
    DEFAULT_BACK_WINDOW_MS,
    DEFAULT_MAX_TRACKED_PACKETS,
    FeedbackRecorder,
    feedback_interval_s,
)

__all__ = [
    "DEFAULT_BACK_WINDOW_MS",
    "DEFAULT_MAX_TRACKED_PACKETS",
    "MAX_PACKET_BYTES",
    "FeedbackPacketBuilder",
    "FeedbackRecorder",
    "ParsedFeedback",
    "encode_status_chunks",
    "feedback_interval_s",
    "parse_feedback",
]
