"""Transports and negotiation: the RTP router, ICE gathering, header extensions, the DTLS role."""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiortc import RTCDtlsTransport, RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver
from aiortc.rtp import (
    HeaderExtensionsMap,
    RtpPacket,
    pack_header_extensions,
)

from media.aiortc_internals._names import (
    ABS_CAPTURE_TIME_URI,
    TRANSPORT_CC_FEEDBACK,
    TRANSPORT_CC_URI,
    _wrap_method,
)
from media.aiortc_internals._senders import codecs, header_extensions


def watch_received_rtp(transport: RTCDtlsTransport, watch: Callable[[RtpPacket], None]) -> Callable[[], None]:
    """Call ``watch`` with every RTP packet the transport parses, before it is routed; returns the undo.

    Every packet counts for congestion control, also those no receiver takes (an RTX
    probe, padding): so the hook sits on the router, which sees them all.
    """
    router = transport._rtp_router  # type: ignore[attr-defined]

    def wrap(route):
        def watched(packet: RtpPacket):
            watch(packet)
            return route(packet)

        return watched

    _wrap_method(router, "route_rtp", wrap)
    return lambda: router.__dict__.pop("route_rtp", None)


def watch_received_rtcp_data(
    transport: RTCDtlsTransport, watch: Callable[[RTCDtlsTransport, bytes], Awaitable[None]]
) -> Callable[[], None]:
    """Await ``watch(transport, data)`` with each decrypted RTCP datagram, before aiortc parses it
    (aiortc drops the packet types it does not know, RTCP XR among them); returns the undo."""
    own = weakref.ref(transport)

    def wrap(handle):
        async def watched(data: bytes) -> None:
            transport = own()
            if transport is not None:
                await watch(transport, data)
            await handle(data)

        return watched

    _wrap_method(transport, "_handle_rtcp_data", wrap)
    return lambda: transport.__dict__.pop("_handle_rtcp_data", None)


async def send_rtcp(transport: RTCDtlsTransport, packets: bytes) -> None:
    """Send serialised RTCP on the transport (aiortc's senders and receivers use the same path)."""
    await transport._send_rtp(packets)  # type: ignore[attr-defined]


# -- negotiation ----------------------------------------------------------------


def limit_gathering(pc: RTCPeerConnection, allowed: Sequence[str], timeout_s: float) -> None:
    """Before ``pc`` gathers: host candidates only on the ``allowed`` addresses (empty: every
    interface aioice finds, docker bridges and VPNs included), and STUN and TURN servers waited
    for at most ``timeout_s`` (aioice waits 5 s for one that never answers, and no answer can
    go out before gathering ends: aiortc has no trickle ICE)."""
    gatherers = {id(t.iceGatherer): t.iceGatherer for t in _ice_transports(pc)}
    for gatherer in gatherers.values():
        connection = gatherer._connection
        gather = connection.get_component_candidates  # aioice's own, public method

        def limited(component: int, addresses: list[str], timeout: float = 5, _gather: Any = gather) -> Any:
            wanted = [a for a in addresses if a in allowed] if allowed else addresses
            return _gather(component=component, addresses=wanted, timeout=timeout_s)

        connection.get_component_candidates = limited


def _ice_transports(pc: RTCPeerConnection) -> list[Any]:
    transports = [t.sender.transport for t in pc.getTransceivers() if t.sender.transport is not None]
    return [dtls.transport for dtls in transports]


def answer_header_extension(transceiver: RTCRtpTransceiver, offered: Any, uri: str) -> bool:
    """Answer header extension ``uri`` where the offer has it; True if it does.

    aiortc answers only with the header extensions it lists itself (mid, abs-send-time,
    audio level); ``offered`` is the section's media description (``aiortc.sdp``). Only this
    answer changes, not aiortc's tables, so aiortc's own offers stay as they were.
    """
    extension = next((e for e in offered.rtp.headerExtensions if e.uri == uri), None)
    if extension is None:
        return False
    if extension not in header_extensions(transceiver):
        header_extensions(transceiver).append(extension)
    return True


def answer_transport_cc(transceiver: RTCRtpTransceiver, offered: Any) -> None:
    """Answer transport-wide congestion control where the offer has it: extension and feedback."""
    with_feedback = {c.payloadType for c in offered.rtp.codecs if TRANSPORT_CC_FEEDBACK in c.rtcpFeedback}
    if not with_feedback or not answer_header_extension(transceiver, offered, TRANSPORT_CC_URI):
        return
    for codec in codecs(transceiver):
        if codec.payloadType in with_feedback and TRANSPORT_CC_FEEDBACK not in codec.rtcpFeedback:
            codec.rtcpFeedback = [*codec.rtcpFeedback, TRANSPORT_CC_FEEDBACK]


class _ExtensionsMap(HeaderExtensionsMap):
    """aiortc's header extensions plus abs-capture-time, which aiortc does not know."""

    abs_capture_time_id: int | None = None

    def configure(self, parameters: Any) -> None:
        super().configure(parameters)
        self.abs_capture_time_id = next(
            (e.id for e in parameters.headerExtensions if e.uri == ABS_CAPTURE_TIME_URI), None
        )

    def set(self, values: Any) -> tuple[int, bytes]:
        profile, data = super().set(values)
        captured = getattr(values, "abs_capture_time", None)
        if captured is None or self.abs_capture_time_id is None:
            return profile, data
        elements = _unpack_extensions(profile, data)
        elements.append((self.abs_capture_time_id, captured.to_bytes(8, "big")))
        return pack_header_extensions(elements)


class _AbsCaptureTimeReader:
    """A transport's header-extension map that also reads abs-capture-time (extension ``ident``)
    into ``packet.extensions.abs_capture_time`` (64-bit NTP); the rest is the wrapped map's."""

    def __init__(self, inner: Any, ident: int) -> None:
        self.inner, self.ident = inner, ident

    def configure(self, parameters: Any) -> None:
        self.inner.configure(parameters)

    def set(self, values: Any) -> tuple[int, bytes]:
        return self.inner.set(values)

    def get(self, extension_profile: int, extension_value: bytes) -> Any:
        values = self.inner.get(extension_profile, extension_value)
        for x_id, x_value in _unpack_extensions(extension_profile, extension_value):
            if x_id == self.ident and len(x_value) >= 8:
                values.abs_capture_time = int.from_bytes(x_value[:8], "big")
        return values


def read_abs_capture_time(transport: RTCDtlsTransport, ident: int) -> None:
    """Make ``transport`` read abs-capture-time (negotiated as extension ``ident``) on the packets
    it receives: ``packet.extensions.abs_capture_time`` (aiortc does not parse it)."""
    current = transport._rtp_header_extensions_map  # type: ignore[attr-defined]
    if not isinstance(current, _AbsCaptureTimeReader):
        transport._rtp_header_extensions_map = _AbsCaptureTimeReader(current, ident)  # type: ignore[attr-defined,assignment]


def _unpack_extensions(profile: int, data: bytes) -> list[tuple[int, bytes]]:
    """The (id, value) elements of a packed extension block (RFC 8285), padding skipped."""
    elements, pos = [], 0
    while pos < len(data):
        if data[pos] == 0:
            pos += 1  # padding
            continue
        if profile == 0xBEDE:
            x_id, length, pos = data[pos] >> 4, (data[pos] & 0x0F) + 1, pos + 1
        else:
            x_id, length, pos = data[pos], data[pos + 1], pos + 2
        elements.append((x_id, data[pos : pos + length]))
        pos += length
    return elements


def send_abs_capture_time(sender: RTCRtpSender) -> None:
    """Let the sender carry abs-capture-time (set per packet with :func:`set_abs_capture_time`).

    Call before the sender starts: it configures its extension map when it does.
    """
    sender._RTCRtpSender__rtp_header_extensions_map = _ExtensionsMap()  # type: ignore[attr-defined]


def set_abs_capture_time(packet: RtpPacket, ntp: int) -> None:
    """Stamp a packet about to be sent with its media's capture time (64-bit NTP)."""
    packet.extensions.abs_capture_time = ntp  # type: ignore[attr-defined]


def negotiated_extension(transceiver: RTCRtpTransceiver, uri: str) -> bool:
    return header_extension_id(transceiver, uri) is not None


def header_extension_id(transceiver: RTCRtpTransceiver, uri: str) -> int | None:
    """The id the section negotiated for header extension ``uri``, None if it did not."""
    return next((e.id for e in header_extensions(transceiver) if e.uri == uri), None)


def negotiated_transport_cc(transceiver: RTCRtpTransceiver) -> bool:
    """Both ends agreed on transport-cc for this section: the extension and the feedback."""
    has_feedback = any(TRANSPORT_CC_FEEDBACK in c.rtcpFeedback for c in codecs(transceiver))
    return has_feedback and negotiated_extension(transceiver, TRANSPORT_CC_URI)


def answer_as_dtls_server(pc: RTCPeerConnection) -> None:
    """Answer ``a=setup:passive``: take the DTLS server role, as WHIP/WHEP servers do (RFC 9725).

    aiortc answers ``active`` (client); GStreamer's DTLS and aiortc's, as client and server
    that way round, share no cipher. Call between setRemoteDescription(offer) and createAnswer.
    """
    for transceiver in pc.getTransceivers():
        if transceiver.receiver.transport is not None:
            transceiver.receiver.transport._set_role("server")  # type: ignore[attr-defined]
    if pc.sctp is not None:
        pc.sctp.transport._set_role("server")  # type: ignore[attr-defined]
