"""Receivers: their jitter buffer, NACKs, retransmissions, REMB, decoding and the RTP and RTCP they take."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpreceiver import NackGenerator
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPsfbPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

from media.aiortc_internals._names import _wrap_method


def jitter_buffer(receiver: RTCRtpReceiver) -> JitterBuffer | None:
    """The receiver's jitter buffer (created in its ``__init__``)."""
    buffer = getattr(receiver, "_RTCRtpReceiver__jitter_buffer", None)
    return buffer if isinstance(buffer, JitterBuffer) else None


def replace_jitter_buffer(receiver: RTCRtpReceiver, buffer: JitterBuffer) -> None:
    receiver._RTCRtpReceiver__jitter_buffer = buffer  # type: ignore[attr-defined]


def nack_generator(receiver: RTCRtpReceiver) -> NackGenerator | None:
    """The receiver's NACK generator (video receivers only)."""
    generator = getattr(receiver, "_RTCRtpReceiver__nack_generator", None)
    return generator if isinstance(generator, NackGenerator) else None


def replace_nack_generator(receiver: RTCRtpReceiver, generator: NackGenerator) -> None:
    receiver._RTCRtpReceiver__nack_generator = generator  # type: ignore[attr-defined]


def receiver_codec_name(receiver: RTCRtpReceiver, payload_type: int) -> str | None:
    """The codec ("VP8", "H264", "rtx") the receiver decodes ``payload_type`` with, once it receives."""
    codec = getattr(receiver, "_RTCRtpReceiver__codecs", {}).get(payload_type)
    return codec.name if codec is not None else None


def media_ssrc(receiver: RTCRtpReceiver, packet: RtpPacket) -> int | None:
    """The SSRC to address keyframe requests and REMB to: the packet's, unless it is a
    retransmission (RTX has an SSRC of its own, which the sender does not answer to)."""
    return None if receiver_codec_name(receiver, packet.payload_type) == "rtx" else packet.ssrc


def route_retransmissions(receiver: RTCRtpReceiver) -> None:
    """Make the receiver's transport route its retransmissions (RTX) to it.

    aiortc's router finds a packet's receiver by SSRC, and one of an unknown SSRC by payload
    type only when a single receiver has that type. It registers no RTX SSRC, and under
    BUNDLE every video section shares the RTX payload types: every retransmission to a peer
    with two video sections or more (a browser agent's camera and screen) was dropped, and a
    lost packet was never repaired. The receiver's RTX SSRCs (from the remote description, as
    it starts receiving) go into the router's SSRC table too.
    """
    own = weakref.ref(receiver)

    def register() -> None:
        receiver = own()
        if receiver is None or receiver.transport is None:
            return
        table = receiver.transport._rtp_router.ssrc_table  # type: ignore[attr-defined]
        for rtx_ssrc in receiver._RTCRtpReceiver__rtx_ssrc:  # type: ignore[attr-defined]
            table.setdefault(rtx_ssrc, receiver)

    if getattr(receiver, "_RTCRtpReceiver__started", False):
        register()
        return

    def wrap(receive):
        async def receive_and_route(parameters: Any) -> None:
            await receive(parameters)
            register()

        return receive_and_route

    _wrap_method(receiver, "receive", wrap)


def stop_remb(receiver: RTCRtpReceiver) -> None:
    """Stop the receiver's REMB estimates: a sender that gets transport-cc feedback would take
    aiortc's slow-starting REMB as a ceiling on its own estimate."""
    receiver._RTCRtpReceiver__remote_bitrate_estimator = None  # type: ignore[attr-defined]


def watch_received_rtcp(receiver: RTCRtpReceiver, watch: Callable[[Any], None]) -> Callable[[], None]:
    """Call ``watch`` with each RTCP packet routed to the receiver; returns the undo."""

    def wrap(handle):
        async def watched(packet):
            watch(packet)
            await handle(packet)

        return watched

    _wrap_method(receiver, "_handle_rtcp_packet", wrap)
    return lambda: receiver.__dict__.pop("_handle_rtcp_packet", None)


def tap_received_rtp(receiver: RTCRtpReceiver, tap: Callable[[RtpPacket], None]) -> Callable[[], None]:
    """Call ``tap`` with each RTP packet the receiver gets, before aiortc handles it; returns the undo."""

    def wrap(handle):
        # Not a coroutine of its own: the handler's, returned for the caller to await (one frame
        # less a packet and a tap: a call's receivers take ~200 packets a second).
        def tapped(packet, arrival_time_ms):
            tap(packet)
            return handle(packet, arrival_time_ms=arrival_time_ms)

        return tapped

    _wrap_method(receiver, "_handle_rtp_packet", wrap)
    return lambda: receiver.__dict__.pop("_handle_rtp_packet", None)


def drop_received_rtp(receiver: RTCRtpReceiver, drop: Callable[[RtpPacket], bool]) -> None:
    """Lose each RTP packet ``drop`` says to, as a lossy link would, before aiortc sees it
    (its receiver reports and NACKs then count it lost): for tests of loss."""

    def wrap(handle):
        def lossy(packet, arrival_time_ms):
            return _nothing() if drop(packet) else handle(packet, arrival_time_ms=arrival_time_ms)

        return lossy

    _wrap_method(receiver, "_handle_rtp_packet", wrap)


async def _nothing() -> None:
    pass


class _NoFrames(JitterBuffer):
    """A jitter buffer that keeps nothing: the receiver's stream is forwarded, never decoded."""

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        return False, None


def stop_decoding(receiver: RTCRtpReceiver) -> None:
    """Never hand the receiver's packets to its decoder (statistics and RTCP go on)."""
    replace_jitter_buffer(receiver, _NoFrames(capacity=16))


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Ask the sender of ``media_ssrc`` for a keyframe (RTCP picture loss indication)."""
    await receiver._send_rtcp_pli(media_ssrc)  # type: ignore[attr-defined]


async def send_remb(receiver: RTCRtpReceiver, bps: int, ssrcs: list[int]) -> None:
    """Tell the sender of ``ssrcs`` the most it may send (RTCP REMB, which browsers take as a cap)."""
    packet = RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP,
        ssrc=receiver._RTCRtpReceiver__rtcp_ssrc or 0,  # type: ignore[attr-defined]
        media_ssrc=0,
        fci=pack_remb_fci(bps, ssrcs),
    )  # type: ignore[attr-defined]
    await receiver._send_rtcp(packet)  # type: ignore[attr-defined]


def limit_sent_remb(receiver: RTCRtpReceiver, limit: Callable[[], float | None]) -> None:
    """Lower every REMB the receiver sends to ``limit()`` (None: as it is).

    aiortc's receiver sends its own estimate (of ITS link) as REMB, and an aiortc sender takes
    the last REMB it got: a cap sent for a slower viewer was overridden within a second by the
    receiver's estimate of the clean link, and the sender swung between the two.
    """

    def wrap(send):
        async def limited(packet: Any) -> None:
            cap = limit()
            if cap is not None and isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                try:
                    bps, ssrcs = unpack_remb_fci(packet.fci)
                except ValueError:
                    bps, ssrcs = 0, []
                if bps > cap:
                    packet = RtcpPsfbPacket(
                        fmt=RTCP_PSFB_APP,
                        ssrc=packet.ssrc,
                        media_ssrc=packet.media_ssrc,
                        fci=pack_remb_fci(int(cap), ssrcs),
                    )
            await send(packet)

        return limited

    _wrap_method(receiver, "_send_rtcp", wrap)


def decoder_thread_id(receiver: RTCRtpReceiver) -> int | None:
    """The kernel id of the receiver's decoder thread (aiortc starts one per receiving track)."""
    thread = getattr(receiver, "_RTCRtpReceiver__decoder_thread", None)
    return getattr(thread, "native_id", None)


def first_rtp_timestamp(receiver: RTCRtpReceiver) -> int | None:
    """The RTP timestamp aiortc subtracts from every decoded frame's ``pts`` (its first frame's)."""
    mapper = getattr(receiver, "_RTCRtpReceiver__timestamp_mapper", None)
    return getattr(mapper, "_origin", None)
