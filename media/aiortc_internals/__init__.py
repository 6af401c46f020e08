"""Every private name of aiortc this project relies on, in one place.

aiortc (1.16) has no public hooks for what a low-latency server needs: its jitter
buffer, its lazily created encoder, the codecs a transceiver settled on, its receive-side
bandwidth estimator, the RTP packets a transport routes and the RTCP a sender sends are
all private. Everything that touches them goes through this package (receivers, senders
and transceivers, transports and negotiation, one module each; the names in ``_names``),
and ``tests/media/test_aiortc_internals.py`` checks each name, so an aiortc upgrade that
moves one fails there, in one place, instead of as a silent loss of a fix. Import from
the package, never from its modules.
"""

from __future__ import annotations

from media.aiortc_internals._arrivals import ArrivalStamps, stamp_arrivals, transport_sequence_number
from media.aiortc_internals._datagram_guard import guard_received_datagrams, is_guarded
from media.aiortc_internals._datagram_reads import (
    read_buffer_sizes,
    read_datagrams_whole_and_cheaply,
    read_whole_and_cheaply,
)
from media.aiortc_internals._decoding import decode_with_direct_hand_back
from media.aiortc_internals._direct_receive import DirectReceive, receive_directly
from media.aiortc_internals._direct_send import DirectSend
from media.aiortc_internals._names import (
    ABS_CAPTURE_TIME_URI,
    PRIVATE_ATTRIBUTES,
    PRIVATE_METHODS,
    TRANSPORT_CC_FEEDBACK,
    TRANSPORT_CC_URI,
)
from media.aiortc_internals._receivers import (
    decoder_thread_id,
    drop_received_rtp,
    first_rtp_timestamp,
    jitter_buffer,
    limit_sent_remb,
    media_ssrc,
    nack_generator,
    receiver_codec_name,
    replace_jitter_buffer,
    replace_nack_generator,
    route_retransmissions,
    send_pli,
    send_remb,
    stop_decoding,
    stop_remb,
    tap_received_rtp,
    watch_received_rtcp,
)
from media.aiortc_internals._rtp_loop import RtpStamper, runs_stamped, send_stamped_payloads
from media.aiortc_internals._rtp_receive import take_received_rtp
from media.aiortc_internals._transport_wide import TransportSequence
from media.aiortc_internals._senders import (
    NextEncodedFrame,
    RtcpSend,
    codecs,
    encoder,
    force_keyframe,
    h264_bitrate,
    header_extensions,
    keep_retransmission_history,
    set_codecs,
    set_encoder,
    set_h264_bitrate,
    set_vp8_bitrate,
    ssrc,
    vp8_bitrate,
    watch_sent_rtp,
    wrap_keyframe_request,
    wrap_next_encoded_frame,
    wrap_sent_rtcp,
)
from media.aiortc_internals._transports import (
    answer_as_dtls_server,
    answer_header_extension,
    answer_transport_cc,
    header_extension_id,
    limit_gathering,
    negotiated_extension,
    negotiated_transport_cc,
    read_abs_capture_time,
    send_abs_capture_time,
    send_rtcp,
    set_abs_capture_time,
    watch_received_rtcp_data,
    watch_received_rtp,
)

__all__ = [
    "guard_received_datagrams",
    "is_guarded",
    "ABS_CAPTURE_TIME_URI",
    "ArrivalStamps",
    "DirectReceive",
    "DirectSend",
    "NextEncodedFrame",
    "PRIVATE_ATTRIBUTES",
    "PRIVATE_METHODS",
    "RtcpSend",
    "RtpStamper",
    "TRANSPORT_CC_FEEDBACK",
    "TRANSPORT_CC_URI",
    "TransportSequence",
    "answer_as_dtls_server",
    "answer_header_extension",
    "answer_transport_cc",
    "codecs",
    "decode_with_direct_hand_back",
    "decoder_thread_id",
    "drop_received_rtp",
    "encoder",
    "first_rtp_timestamp",
    "force_keyframe",
    "h264_bitrate",
    "header_extension_id",
    "header_extensions",
    "jitter_buffer",
    "keep_retransmission_history",
    "limit_gathering",
    "limit_sent_remb",
    "media_ssrc",
    "nack_generator",
    "negotiated_extension",
    "negotiated_transport_cc",
    "read_abs_capture_time",
    "read_buffer_sizes",
    "read_datagrams_whole_and_cheaply",
    "read_whole_and_cheaply",
    "receive_directly",
    "receiver_codec_name",
    "replace_jitter_buffer",
    "replace_nack_generator",
    "route_retransmissions",
    "runs_stamped",
    "send_abs_capture_time",
    "send_pli",
    "send_remb",
    "send_rtcp",
    "send_stamped_payloads",
    "set_abs_capture_time",
    "set_codecs",
    "set_encoder",
    "set_h264_bitrate",
    "set_vp8_bitrate",
    "ssrc",
    "stop_decoding",
    "stamp_arrivals",
    "stop_remb",
    "take_received_rtp",
    "tap_received_rtp",
    "transport_sequence_number",
    "vp8_bitrate",
    "watch_received_rtcp",
    "watch_received_rtcp_data",
    "watch_received_rtp",
    "watch_sent_rtp",
    "wrap_keyframe_request",
    "wrap_next_encoded_frame",
    "wrap_sent_rtcp",
]
