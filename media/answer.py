"""Answering a browser's offer with aiortc: what the offer must have, what the answer adds.

- BUNDLE on one transport (aiortc's default BALANCED policy leaves later video sections
  on a transport that never sends), Opus for voices (they are forwarded, never decoded:
  :mod:`media.voice`), and at least one video section;
- transport-cc and abs-capture-time answered where the browser offers them (aiortc
  answers only what it lists itself), the preferred video codec put first;
- the browser asked to start its upload estimate at :data:`BROWSER_START_KBPS`;
- :func:`close_peer`, which also unhooks the listeners that would keep a closed peer alive.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from pyee.asyncio import AsyncIOEventEmitter

from media import aiortc_internals as internals
from media.peers import CODECS, enable_low_latency_receive
from media.voice import answer_with_opus

logger = logging.getLogger(__name__)


class MediaError(Exception):
    """An offer the room cannot answer. ``code`` is stable; ``message`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class IceGathering:
    """Where and how long the server's peers gather ICE candidates (settings ``ice_addresses``,
    ``ice_gather_timeout_s``): only useful interfaces, and no answer held back for seconds
    by a STUN or TURN server that does not answer."""

    addresses: tuple[str, ...] = ()  # host candidates only on these; empty: every interface
    timeout_s: float = 5.0  # at most this for STUN and TURN servers (aioice's own default)


AIOICE_DEFAULTS = IceGathering()

# Where a browser's upload estimate starts (libwebrtc's x-google-start-bitrate, read from the
# answer's send codec). Chromium's own start is 300 kbps: it sends a 1280x720 camera at
# 320x180 at first, and its first probes are capped at twice what that small encoder can use,
# so measured against the server its estimate sat at ~1.3 Mbps until the encoder stepped up,
# 8-12 s into the call. From 1 Mbps it probes at 3 and 5 Mbps at once and starts at 960x540.
# SFUs do the same (Jitsi 800 kbps, mediasoup-client's videoGoogleStartBitrate); an uplink
# slower than this is found within a second by the delay-based estimator, which backs off.
BROWSER_START_KBPS = 1000
START_BITRATE_PARAMETER = "x-google-start-bitrate"


async def receive_offer(
    sdp: str,
    ice_servers: Sequence[RTCIceServer] = (),
    ice_transport_policy: str = "all",
    gathering: IceGathering = AIOICE_DEFAULTS,
) -> tuple[RTCPeerConnection, list[RTCRtpTransceiver], list[RTCRtpTransceiver]]:
    """A new answering peer with a browser's offer applied, and its audio and video transceivers.

    Raises :class:`MediaError` (with the peer closed) for an offer that cannot be used:
    not SDP, no codec in common, or no video section. ``ice_transport_policy`` "relay": TURN
    relay candidates only (aiortc passes it to aioice's ``TransportPolicy.RELAY``).
    """
    if not sdp.lstrip().startswith("v=0"):
        raise MediaError("bad_sdp", "the offer is not a session description (it must start with v=0)")
    description = _parse_checked(sdp)
    sdp = share_bundled_candidates(sdp, description)
    # MAX_BUNDLE: under aiortc's default (BALANCED) the second and later video sections stay
    # on a transport that BUNDLE negotiation stops, and never send.
    pc = RTCPeerConnection(
        RTCConfiguration(
            iceServers=list(ice_servers),
            iceTransportPolicy=RTCIceTransportPolicy(ice_transport_policy),
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        )
    )
    enable_low_latency_receive(pc)
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        offered = {m.rtp.muxId: m for m in description.media}
        for transceiver in pc.getTransceivers():
            if transceiver.mid in offered:
                internals.answer_transport_cc(transceiver, offered[transceiver.mid])
                internals.answer_header_extension(
                    transceiver, offered[transceiver.mid], internals.ABS_CAPTURE_TIME_URI
                )
                if transceiver.kind == "video":
                    ask_start_bitrate(transceiver, BROWSER_START_KBPS)
        internals.limit_gathering(pc, gathering.addresses, gathering.timeout_s)
        internals.guard_received_datagrams(pc)  # one stray datagram must not end its media
        internals.read_datagrams_whole_and_cheaply(pc)  # not 256 KiB allocated a datagram
    except Exception as exc:  # aiortc raises ValueError, OperationError, ... on bad SDP
        await close_peer(pc)
        if "send parameters" in str(exc):
            raise MediaError("unsupported_codec", f"no codec in common: {exc}") from None
        raise MediaError("bad_sdp", f"the offer could not be used: {exc}") from None
    audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
    video = [t for t in pc.getTransceivers() if t.kind == "video"]
    if not video:
        await close_peer(pc)
        raise MediaError("no_video", "the offer has no video section; see docs/protocol.md, WebRTC")
    if not all(answer_with_opus(t) for t in audio):
        await close_peer(pc)
        raise MediaError(
            "unsupported_codec", "the audio section has no Opus (every WebRTC browser offers it)"
        )
    if any(t.receiver.transport is None for t in pc.getTransceivers()):
        await close_peer(pc)
        raise MediaError("bad_sdp", "the offer leaves a media section without a transport")
    return pc, audio, video


def _parse_checked(sdp: str) -> aiortc_sdp.SessionDescription:
    """The offer parsed; refused if it does not parse or has a BUNDLE group naming a section it lacks.

    aiortc would bundle every section onto the missing one's transport, which does not
    exist: answering, then closing, that peer fail (a browser offer with its audio cut out).
    """
    try:
        description = aiortc_sdp.SessionDescription.parse(sdp)
    except Exception as exc:  # the parser raises ValueError, KeyError, IndexError... on bad lines
        raise MediaError("bad_sdp", f"the offer could not be parsed: {exc!r}"[:300]) from None
    mids = [media.rtp.muxId for media in description.media]
    if len(set(mids)) != len(mids):
        raise MediaError("bad_sdp", "two media sections of the offer share one mid")
    for group in description.group:
        missing = [item for item in group.items if item not in mids]
        if group.semantic == "BUNDLE" and missing:
            raise MediaError("bad_sdp", f"the offer bundles sections it does not have (mid {missing[0]!r})")
    return description


def share_bundled_candidates(sdp: str, description: aiortc_sdp.SessionDescription) -> str:
    """The offer with every candidate of its BUNDLE group listed in each of the group's sections.

    aiortc 1.16 keeps, per ICE transport, the candidates of the LAST section using it
    (``setRemoteDescription``: ``iceCandidates[iceTransport] = media``). Under BUNDLE one
    transport serves every section and browsers list candidates in the first section only
    (Firefox adds ``end-of-candidates`` to each), so the offer's candidates were lost: the
    server learnt a browser's address only from the checks that reached it (peer-reflexive),
    which never happens when the server must relay (``ice_transport_policy`` "relay") or sits
    behind NAT.
    """
    bundle = next((g for g in description.group if g.semantic == "BUNDLE" and g.items), None)
    newline = "\r\n" if "\r\n" in sdp else "\n"
    head, *sections = sdp.rstrip("\r\n").split(f"{newline}m=")
    if bundle is None or len(sections) < 2:
        return sdp
    bundled = [i for i, s in enumerate(sections) if _mid(s, newline) in bundle.items]
    shared: list[str] = []
    end = False
    for i in bundled:
        for line in sections[i].split(newline):
            if line.startswith("a=candidate:") and line not in shared:
                shared.append(line)
            end = end or line == "a=end-of-candidates"
    if not shared:
        return sdp
    for i in bundled:
        kept = [
            line
            for line in sections[i].split(newline)
            if not line.startswith("a=candidate:") and line != "a=end-of-candidates"
        ]
        sections[i] = newline.join(kept + shared + (["a=end-of-candidates"] if end else []))
    return f"{newline}m=".join([head, *sections]) + newline


def _mid(section: str, newline: str) -> str | None:
    return next((line[6:] for line in section.split(newline) if line.startswith("a=mid:")), None)


async def close_peer(pc: RTCPeerConnection) -> None:
    """Close ``pc``, even half-built by an offer that failed: a failure is logged, never raised."""
    try:
        await pc.close()
    except Exception:
        logger.warning("closing a peer connection failed", exc_info=True)
    _drop_listeners(pc)


RCVR_RTT = "a=rtcp-xr:rcvr-rtt=all"


def with_receiver_rtt(offer: str, answer: str) -> str:
    """The answer, agreeing to receiver reference time reports where the offer asks (RFC 3611).

    aiortc does not write the attribute, and without it Chromium never measures a round trip
    on a section it only receives, so it cannot place our sender reports on its clock
    (media.round_trip answers the reports).
    """
    if RCVR_RTT not in offer:
        return answer
    return answer.replace("a=rtcp-mux\r\n", f"a=rtcp-mux\r\n{RCVR_RTT}\r\n")


def _drop_listeners(pc: RTCPeerConnection) -> None:
    """Unhook every event listener of a closed peer and of its transports.

    aiortc's peer listens to its own DTLS transports (``statechange`` -> a bound method of
    the peer), and our handlers close over the peer: reference cycles, so a closed peer with
    its receivers, buffers and encoders lived on until Python's cyclic collector came round
    (measured: ~7 calls' worth in a churn). Without the listeners, reference counting frees
    them as soon as the room lets go.
    """
    emitters: list[AsyncIOEventEmitter] = [pc]
    if pc.sctp is not None:
        emitters += [pc.sctp, pc.sctp.transport]
    for transceiver in pc.getTransceivers():
        for dtls in (transceiver.sender.transport, transceiver.receiver.transport):
            if dtls is not None:
                emitters += [dtls, dtls.transport, dtls.transport.iceGatherer]
    for emitter in emitters:
        emitter.remove_all_listeners()


def ask_start_bitrate(transceiver: RTCRtpTransceiver, kbps: int) -> None:
    """Ask the browser to start its upload estimate at ``kbps``: the parameter on each of the
    answer's video codecs (one of them will be the browser's send codec; RTX has none)."""
    for codec in internals.codecs(transceiver):
        if codec.mimeType.lower() != "video/rtx":
            codec.parameters[START_BITRATE_PARAMETER] = kbps


def answer_with_codec_first(transceiver: RTCRtpTransceiver, name: str) -> None:
    """Put codec ``name`` first among those the offer and aiortc have in common.

    ``setCodecPreferences`` cannot do this for an answer: aiortc creates the answering
    transceiver inside ``setRemoteDescription`` and settles its codecs there, from the
    offer's order. The answer lists ``transceiver._codecs`` in order, and both ends then
    send with the first, so reordering that list is what choosing the codec means.
    """
    if name.upper() not in CODECS:
        raise ValueError(f"unknown video codec {name!r}: use one of {CODECS}")
    codecs = internals.codecs(transceiver)
    wanted = [c for c in codecs if c.mimeType.upper() == f"VIDEO/{name.upper()}"]
    if not wanted:
        return  # the browser did not offer it: keep its order
    keep = {c.payloadType for c in wanted}
    rtx = [c for c in codecs if c.mimeType.lower() == "video/rtx" and c.parameters.get("apt") in keep]
    internals.set_codecs(transceiver, wanted + rtx + [c for c in codecs if c not in wanted and c not in rtx])
