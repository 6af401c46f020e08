"""The aiortc names this package relies on (extension URIs, every private name the test walks)
and the one way it patches an instance's method."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from aioice import Connection
from aiortc import RTCDtlsTransport, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpparameters import RTCRtcpFeedback

TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"


TRANSPORT_CC_FEEDBACK = RTCRtcpFeedback(type="transport-cc")
ABS_CAPTURE_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"

# (owner class, attribute) pairs, named as Python mangles them; the test walks this list.
PRIVATE_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("RTCRtpReceiver", "_RTCRtpReceiver__jitter_buffer"),
    ("RTCRtpReceiver", "_RTCRtpReceiver__remote_bitrate_estimator"),
    ("RTCRtpReceiver", "_RTCRtpReceiver__timestamp_mapper"),
    ("RTCRtpReceiver", "_RTCRtpReceiver__rtcp_ssrc"),
    ("RTCRtpReceiver", "_RTCRtpReceiver__decoder_thread"),  # per-call CPU (telepresence.room_cpu)
    ("RTCRtpReceiver", "_RTCRtpReceiver__nack_generator"),  # NACKs asked again (media.repair)
    ("RTCRtpReceiver", "_RTCRtpReceiver__codecs"),
    ("RTCRtpReceiver", "_RTCRtpReceiver__rtx_ssrc"),  # route_retransmissions
    ("RTCRtpReceiver", "_RTCRtpReceiver__started"),
    ("RTCRtpSender", "_RTCRtpSender__encoder"),
    ("RTCRtpSender", "_ssrc"),
    ("Vp8Encoder", "_Vp8Encoder__target_bitrate"),
    ("H264Encoder", "_H264Encoder__target_bitrate"),
    ("RTCRtpSender", "_RTCRtpSender__rtp_history"),
    ("RTCRtpSender", "_RTCRtpSender__rtp_header_extensions_map"),
    # send_stamped_payloads: the sender's RTP loop replaced (its state, its SR counters).
    ("RTCRtpSender", "_RTCRtpSender__rtp_started"),
    ("RTCRtpSender", "_RTCRtpSender__rtp_exited"),
    ("RTCRtpSender", "_RTCRtpSender__track"),
    ("RTCRtpSender", "_RTCRtpSender__mid"),
    ("RTCRtpSender", "_RTCRtpSender__ntp_timestamp"),
    ("RTCRtpSender", "_RTCRtpSender__rtp_timestamp"),
    ("RTCRtpSender", "_RTCRtpSender__octet_count"),
    ("RTCRtpSender", "_RTCRtpSender__packet_count"),
    ("RTCRtpSender", "_enabled"),  # DirectSend: a disabled sender drops its frames, as aiortc's loop
    # ... and its send_now: the DTLS transport's state, SRTP session and stats, the ICE pair in use.
    ("RTCDtlsTransport", "_state"),
    ("RTCDtlsTransport", "_tx_srtp"),
    ("RTCDtlsTransport", "_RTCDtlsTransport__tx_bytes"),
    ("RTCDtlsTransport", "_RTCDtlsTransport__tx_packets"),
    ("RTCDtlsTransport", "_rx_srtp"),  # take_received_rtp: the SRTP session that unprotects
    ("RTCDtlsTransport", "_RTCDtlsTransport__rx_bytes"),  # receive_directly: the transport's stats
    ("RTCDtlsTransport", "_RTCDtlsTransport__rx_packets"),
    ("RTCIceTransport", "_connection"),
    ("RTCIceTransport", "_recv"),  # guard_received_datagrams: what the DTLS transport reads
    ("Connection", "_nominated"),
    ("RTCRtpTransceiver", "_codecs"),
    ("RTCRtpTransceiver", "_headerExtensions"),
    ("RTCDtlsTransport", "_rtp_router"),
    ("RTCDtlsTransport", "_rtp_header_extensions_map"),
    # MarkerJitterBuffer (media.peers) extends the buffer and reads its state.
    ("JitterBuffer", "_origin"),
    ("JitterBuffer", "_packets"),
    ("JitterBuffer", "_is_video"),
    ("JitterBuffer", "_prefetch"),
    # limit_gathering: the gatherer's aioice connection.
    ("RTCIceGatherer", "_connection"),
    # stamp_arrivals: the aioice connection's UDP endpoints (StunProtocol, each with its candidate).
    ("Connection", "_protocols"),
)
PRIVATE_METHODS: tuple[tuple[type, str], ...] = (
    (RTCRtpSender, "_next_encoded_frame"),
    (RTCRtpSender, "_send_rtcp"),
    (RTCRtpReceiver, "_handle_rtp_packet"),
    (RTCRtpReceiver, "_send_rtcp_pli"),
    (RTCRtpReceiver, "_send_rtcp"),
    (RTCRtpSender, "_send_keyframe"),
    (RTCRtpSender, "_run_rtp"),  # send_stamped_payloads
    (RTCRtpSender, "_retransmit"),  # it reads the history send_stamped_payloads keeps
    (RTCRtpReceiver, "_handle_rtcp_packet"),
    (RTCDtlsTransport, "_send_rtp"),
    (RTCDtlsTransport, "_handle_rtcp_data"),
    (RTCDtlsTransport, "_handle_rtp_data"),  # receive_directly
    (Connection, "data_received"),  # receive_directly: aioice hands on what is not STUN
    (JitterBuffer, "_remove_frame"),
    (RTCDtlsTransport, "_set_role"),  # answer_as_dtls_server (WHIP/WHEP answer a=setup:passive)
    # Overridden by media.peers (the tuned encoders) and media.program (whole-frame output).
    (H264Encoder, "_encode_frame"),
    (H264Encoder, "_split_bitstream"),
    (H264Encoder, "_packetize"),
    (Vp8Encoder, "_packetize"),
)


# The one way this package patches an instance's method (used by every part of it).
def _wrap_method(instance: Any, name: str, wrap: Callable[[Callable], Callable]) -> None:
    current = instance.__dict__.get(name)
    if current is None:
        # The class's function with a weak reference, not a bound method: a bound method
        # stored on its own instance is a reference cycle (closed peers then wait for the GC).
        function = getattr(type(instance), name)
        own = weakref.ref(instance)

        def current(*args: Any, **kwargs: Any) -> Any:
            return function(own(), *args, **kwargs)

    setattr(instance, name, wrap(current))
