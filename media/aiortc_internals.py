"""Every private name of aiortc this project relies on, in one place.

aiortc (1.16) has no public hooks for what a low-latency server needs: its jitter
buffer, its lazily created encoder, the codecs a transceiver settled on, its receive-side
bandwidth estimator, the RTP packets a transport routes and the RTCP a sender sends are
all private. Everything that touches them goes through this module, and
``tests/media/test_aiortc_internals.py`` checks each name, so an aiortc upgrade that moves
one fails there, in one place, instead of as a silent loss of a fix.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
from aiortc import RTCDtlsTransport, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters
from aiortc.rtcrtpreceiver import NackGenerator
from aiortc.rtp import (
    RTCP_PSFB_APP,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtpPacket,
    pack_header_extensions,
    pack_remb_fci,
    unpack_remb_fci,
)

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
)
PRIVATE_METHODS: tuple[tuple[type, str], ...] = (
    (RTCRtpSender, "_next_encoded_frame"),
    (RTCRtpSender, "_send_rtcp"),
    (RTCRtpReceiver, "_handle_rtp_packet"),
    (RTCRtpReceiver, "_send_rtcp_pli"),
    (RTCRtpReceiver, "_send_rtcp"),
    (RTCRtpSender, "_send_keyframe"),
    (RTCRtpReceiver, "_handle_rtcp_packet"),
    (RTCDtlsTransport, "_send_rtp"),
    (RTCDtlsTransport, "_handle_rtcp_data"),
    (JitterBuffer, "_remove_frame"),
    # Overridden by media.peers (the tuned encoders) and media.program (whole-frame output).
    (H264Encoder, "_encode_frame"),
    (H264Encoder, "_split_bitstream"),
    (H264Encoder, "_packetize"),
    (Vp8Encoder, "_packetize"),
)


# -- receivers ------------------------------------------------------------------


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
        async def tapped(packet, arrival_time_ms):
            tap(packet)
            await handle(packet, arrival_time_ms=arrival_time_ms)

        return tapped

    _wrap_method(receiver, "_handle_rtp_packet", wrap)
    return lambda: receiver.__dict__.pop("_handle_rtp_packet", None)


def drop_received_rtp(receiver: RTCRtpReceiver, drop: Callable[[RtpPacket], bool]) -> None:
    """Lose each RTP packet ``drop`` says to, as a lossy link would, before aiortc sees it
    (its receiver reports and NACKs then count it lost): for tests of loss."""

    def wrap(handle):
        async def lossy(packet, arrival_time_ms):
            if not drop(packet):
                await handle(packet, arrival_time_ms=arrival_time_ms)

        return lossy

    _wrap_method(receiver, "_handle_rtp_packet", wrap)


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
        ssrc=receiver._RTCRtpReceiver__rtcp_ssrc or 0,
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


# -- senders --------------------------------------------------------------------


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


# -- transports -----------------------------------------------------------------


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
        transport._rtp_header_extensions_map = _AbsCaptureTimeReader(current, ident)  # type: ignore[attr-defined]


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
    return any(e.uri == uri for e in header_extensions(transceiver))


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
