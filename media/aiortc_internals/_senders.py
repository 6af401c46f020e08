"""Senders and transceivers: the lazily made encoder, keyframes, the RTCP they send, their codecs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
from aiortc import RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters
from aiortc.rtp import (
    RtpPacket,
)

from media.aiortc_internals._names import _wrap_method


def keep_retransmission_history(packets: int) -> None:
    """Keep the last ``packets`` sent RTP packets for NACKed retransmission, and NACK that far
    back (aiortc keeps 128: half a second of a 2 Mbps stream, gone before a lossy link's second
    NACK comes). Both are module globals aiortc reads at each use; this changes every peer."""
    aiortc.rtcrtpsender.RTP_HISTORY_SIZE = packets
    aiortc.rtcrtpreceiver.RTP_HISTORY_SIZE = packets


def ssrc(sender: RTCRtpSender) -> int:
    """The sender's SSRC (also the SSRC its section's receiver puts on its RTCP)."""
    return sender._ssrc  # type: ignore[attr-defined]


def encoder(sender: RTCRtpSender) -> Any:
    """The sender's encoder, or None before its first frame (aiortc creates it lazily)."""
    return sender._RTCRtpSender__encoder  # type: ignore[attr-defined]


def set_encoder(sender: RTCRtpSender, value: Any) -> None:
    sender._RTCRtpSender__encoder = value  # type: ignore[attr-defined]


NextEncodedFrame = Callable[[RTCRtpCodecParameters], Awaitable[Any]]


def wrap_next_encoded_frame(
    sender: RTCRtpSender, wrap: Callable[[NextEncodedFrame], NextEncodedFrame]
) -> None:
    """Route the sender's "read the track, encode one frame" step through ``wrap(current)``.

    Wrappers stack. The sender keeps the wrapper, so nothing in it may keep the sender.
    """
    _wrap_method(sender, "_next_encoded_frame", wrap)


def force_keyframe(sender: RTCRtpSender) -> None:
    """Make the sender's next encoded frame a keyframe (what a PLI from its receiver does)."""
    sender._send_keyframe()  # type: ignore[attr-defined]


def wrap_keyframe_request(
    sender: RTCRtpSender, wrap: Callable[[Callable[[], None]], Callable[[], None]]
) -> None:
    """Route the sender's "a receiver asked for a keyframe" step through ``wrap(current)``."""
    _wrap_method(sender, "_send_keyframe", wrap)


RtcpSend = Callable[[list[Any]], Awaitable[None]]


def wrap_sent_rtcp(sender: RTCRtpSender, wrap: Callable[[RtcpSend], RtcpSend]) -> None:
    """Route the sender's RTCP (sender reports, SDES, BYE) through ``wrap(current)``."""
    _wrap_method(sender, "_send_rtcp", wrap)


class _WatchedHistory(dict):
    """The sender's retransmission history: every packet goes in just before it is sent."""

    def __init__(self, original: dict, watch: Callable[[RtpPacket], None]) -> None:
        super().__init__(original)
        self.watch = watch

    def __setitem__(self, key: int, packet: RtpPacket) -> None:
        self.watch(packet)
        super().__setitem__(key, packet)


def watch_sent_rtp(sender: RTCRtpSender, watch: Callable[[RtpPacket], None]) -> None:
    """Call ``watch`` with each RTP packet the sender sends, before it is serialised."""
    history = sender._RTCRtpSender__rtp_history  # type: ignore[attr-defined]
    sender._RTCRtpSender__rtp_history = _WatchedHistory(history, watch)  # type: ignore[attr-defined]


def vp8_bitrate(encoder: Any) -> int:
    """aiortc's VP8 encoder's target; it recreates its codec when this moves by 10 %."""
    return encoder._Vp8Encoder__target_bitrate


def set_vp8_bitrate(encoder: Any, bps: int) -> None:
    encoder._Vp8Encoder__target_bitrate = bps


def h264_bitrate(encoder: Any) -> int:
    return encoder._H264Encoder__target_bitrate


def set_h264_bitrate(encoder: Any, bps: int) -> None:
    encoder._H264Encoder__target_bitrate = bps


# -- transceivers ---------------------------------------------------------------


def codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The codecs a negotiated transceiver settled on, in the order the answer lists them."""
    return transceiver._codecs  # type: ignore[attr-defined]


def set_codecs(transceiver: RTCRtpTransceiver, value: list[RTCRtpCodecParameters]) -> None:
    transceiver._codecs = value  # type: ignore[attr-defined]


def header_extensions(transceiver: RTCRtpTransceiver) -> list[RTCRtpHeaderExtensionParameters]:
    return transceiver._headerExtensions  # type: ignore[attr-defined]
