"""media.aiortc_internals' stamped RTP loop: the same datagrams as aiortc's, without its objects.

Pure tests compare :class:`RtpStamper` with aiortc's own serialisation byte for byte; real
loopback peers check that a sender running the loop is decoded, reported (RTCP SR) and that a
sender whose packets are watched keeps aiortc's loop."""

from __future__ import annotations

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtcpSrPacket, RtpPacket

from media import aiortc_internals as internals
from media.aiortc_internals._rtp_loop import _SentDatagrams
from media.peers import enable_low_latency_receive, prefer_codec, tune_video_sender
from media.sources import TestCardTrack
from media.tracks import FrameSlot, TrackDrain
from tests.media.test_room import wait_for

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def extension_map(*extensions: tuple[int, str]) -> HeaderExtensionsMap:
    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(
        RTCRtpParameters(
            headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=u) for i, u in extensions]
        )
    )
    return extensions_map


def aiortcs(extensions_map, payloads, sequence, timestamp, ntp, mid) -> list[bytes]:
    """What aiortc's own loop puts on the wire for the same frame (rtcrtpsender._run_rtp)."""
    out = []
    for i, payload in enumerate(payloads):
        packet = RtpPacket(payload_type=97, sequence_number=(sequence + i) & 0xFFFF, timestamp=timestamp)
        packet.ssrc = 0x11223344
        packet.payload = payload
        packet.marker = int(i == len(payloads) - 1)
        packet.extensions.abs_send_time = (ntp >> 14) & 0x00FFFFFF
        packet.extensions.mid = mid
        out.append(packet.serialize(extensions_map))
    return out


@pytest.mark.parametrize(
    "extensions",
    [
        ((1, MID), (3, ABS_SEND_TIME)),  # aiortc's answer to a browser
        ((3, ABS_SEND_TIME), (4, MID)),
        ((1, MID),),
        ((3, ABS_SEND_TIME),),
        (),
        ((15, MID), (3, ABS_SEND_TIME)),  # an id over 14: the two-byte header form
    ],
)
def test_stamped_datagrams_are_aiortcs_byte_for_byte(extensions):
    extensions_map = extension_map(*extensions)
    stamper = internals.RtpStamper(97, 0x11223344, extensions_map, "0")
    payloads = [bytes([i]) * (1100 + i) for i in range(4)]
    for sequence, timestamp, ntp in (
        (100, 3000, 0xE0000000_12345678),
        (65534, 0xFFFFFFFF, 0xE0000001_FEDCBA98),
    ):
        ours = stamper.datagrams(payloads, sequence, timestamp, ntp)
        assert ours == aiortcs(extensions_map, payloads, sequence, timestamp, ntp, "0")
    # One payload: it is the frame's end.
    assert stamper.datagrams([b"x"], 7, 8, 9) == aiortcs(extensions_map, [b"x"], 7, 8, 9, "0")


def test_the_history_keeps_datagrams_and_gives_packets_back():
    extensions_map = extension_map((1, MID), (3, ABS_SEND_TIME))
    history = _SentDatagrams(extensions_map)
    (datagram,) = internals.RtpStamper(97, 5, extensions_map, "2").datagrams([b"abc"], 41, 1234, 1 << 40)
    history[41] = datagram
    packet = history.get(41)
    assert (packet.sequence_number, packet.timestamp, packet.ssrc, packet.marker) == (41, 1234, 5, 1)
    assert packet.payload == b"abc" and packet.extensions.mid == "2"
    assert packet.serialize(extensions_map) == datagram  # what a retransmission re-sends
    assert history.get(42) is None


async def _pair(hook=None):
    """A test card sent VP8 with the stamped loop asked for (after ``hook(sender)``), received."""
    out, into = (
        RTCPeerConnection(RTCConfiguration(iceServers=[])),
        RTCPeerConnection(RTCConfiguration(iceServers=[])),
    )
    card = TestCardTrack(320, 240)
    transceiver = out.addTransceiver(card, direction="sendonly")
    prefer_codec(transceiver, "VP8")
    tune_video_sender(transceiver.sender)
    internals.send_stamped_payloads(transceiver.sender)
    if hook is not None:
        hook(transceiver.sender)
    slot, drains = FrameSlot("received"), []
    into.on("track", lambda track: drains.append(TrackDrain(track, slot)))
    enable_low_latency_receive(into)
    await out.setLocalDescription(await out.createOffer())
    await into.setRemoteDescription(out.localDescription)
    await into.setLocalDescription(await into.createAnswer())
    await out.setRemoteDescription(into.localDescription)

    async def close() -> None:
        for drain in drains:
            await drain.stop()
        await out.close()
        await into.close()

    return transceiver.sender, into.getTransceivers()[0].receiver, slot, close


async def test_a_sender_on_the_stamped_loop_is_decoded_and_reported():
    sender, receiver, slot, close = await _pair()
    try:
        reports: list[RtcpSrPacket] = []
        internals.watch_received_rtcp(
            receiver, lambda p: reports.append(p) if isinstance(p, RtcpSrPacket) else None
        )
        await wait_for(lambda: slot.received > 20)
        assert internals.runs_stamped(sender)
        assert slot.latest.frame.width == 320  # decoded
        await wait_for(lambda: bool(reports), timeout=5)  # aiortc's RTCP loop, fed our counters
        info = reports[-1].sender_info
        assert info.packet_count > 20 and info.octet_count > 1000 and info.ntp_timestamp > 0
        stats = {s.type: s for s in (await sender.getStats()).values()}
        assert stats["outbound-rtp"].packetsSent >= info.packet_count
        # Sent on the socket at once (send_now), the DTLS transport's own figures still count them.
        assert stats["transport"].packetsSent >= info.packet_count
        assert stats["transport"].bytesSent > info.octet_count  # SRTP's tags and the headers on top
    finally:
        await close()
    # Stopped: the loop exited (stop() waited for it) and let go of its track, as aiortc's does.
    assert sender.track is None and internals.encoder(sender) is None


async def test_a_sender_whose_packets_are_watched_keeps_aiortcs_loop():
    seen: list[RtpPacket] = []
    sender, _, slot, close = await _pair(lambda s: internals.watch_sent_rtp(s, seen.append))
    try:
        await wait_for(lambda: slot.received > 5)
        assert not internals.runs_stamped(sender)
        assert seen and all(isinstance(p, RtpPacket) for p in seen)
    finally:
        await close()
