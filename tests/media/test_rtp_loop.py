"""media.aiortc_internals' stamped RTP loop: the same datagrams as aiortc's, without its objects.

Pure tests compare :class:`RtpStamper` with aiortc's own serialisation byte for byte; real
loopback peers check that a sender running the loop is decoded, reported (RTCP SR), and that a
sender watched by the capture clock runs it too, its frames carrying abs-capture-time and its
reports on the capture clock."""

from __future__ import annotations

import re
import time

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtcpSrPacket, RtpPacket
from aiortc.sdp import SessionDescription

from media import aiortc_internals as internals
from media.aiortc_internals._rtp_loop import _SentDatagrams, packed_extensions
from media.aiortc_internals._transports import _ExtensionsMap
from media.capture_clock import CaptureClock, CaptureTimes, align_sender_reports, ntp_seconds
from media.peers import enable_low_latency_receive, prefer_codec, tune_video_sender
from media.sources import TestCardTrack
from media.tracks import FrameSlot, TrackDrain
from tests.media.test_room import wait_for

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def extension_map(*extensions: tuple[int, str], kind: type = HeaderExtensionsMap) -> HeaderExtensionsMap:
    extensions_map = kind()
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
        # aiortc's RTCP loop, fed our counters (an earlier report may have come before 20 packets went).
        await wait_for(lambda: bool(reports) and reports[-1].sender_info.packet_count > 20, timeout=5)
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


def test_a_watched_packets_own_extensions_are_packed_as_aiortc_would():
    """The capture clock's watch adds abs-capture-time to a frame's first packet: that datagram
    gets the map's own block, byte for byte what aiortc's serialise makes of the packet."""
    extensions_map = extension_map(
        (1, MID), (3, ABS_SEND_TIME), (14, internals.ABS_CAPTURE_TIME_URI), kind=_ExtensionsMap
    )
    stamper = internals.RtpStamper(97, 0x11223344, extensions_map, "0")
    payloads = [bytes([i]) * (900 + i) for i in range(3)]
    ntp = 0xE0000000_12345678
    expected = aiortcs(extensions_map, payloads, 500, 9000, ntp, "0")
    first = RtpPacket.parse(expected[0], extensions_map)
    internals.set_abs_capture_time(first, 0x0123456789ABCDEF)
    expected[0] = first.serialize(extensions_map)
    own = {0: packed_extensions(extensions_map, first.extensions)}
    assert stamper.datagrams(payloads, 500, 9000, ntp, own) == expected
    history = _SentDatagrams(extensions_map)
    history[500] = expected[0]
    # A retransmission of that packet carries the capture time again.
    assert history.get(500).serialize(extensions_map) == expected[0]


async def test_a_watched_sender_runs_the_stamped_loop_with_capture_times_and_aligned_reports():
    """What the call's customer sender does (media.room): the capture clock watches its packets
    and stamps abs-capture-time on each frame's first one; it runs the stamped loop all the same."""
    times = CaptureTimes()  # what the sender reads (the last KEEP frames: ~4 s at 30 fps)
    noted: dict[int, float] = {}  # every frame's, for the checks (two reports can take longer)
    captured: dict[int, int] = {}  # RTP timestamp -> abs-capture-time as received
    reports: list[RtcpSrPacket] = []

    class Captured(TestCardTrack):
        async def recv(self):
            frame = await super().recv()
            # Captured 200 ms before it is handed over; noted by its RTP-clock timestamp.
            pts, at = round(frame.pts * frame.time_base * 90000), time.time() - 0.2
            times.note(pts, at)
            noted[pts] = at
            return frame

    out, into = (
        RTCPeerConnection(RTCConfiguration(iceServers=[])),
        RTCPeerConnection(RTCConfiguration(iceServers=[])),
    )
    try:
        receiver = into.addTransceiver("video", direction="recvonly").receiver
        internals.watch_received_rtcp(receiver, lambda p: isinstance(p, RtcpSrPacket) and reports.append(p))

        def on_packet(packet: RtpPacket) -> None:
            stamp = getattr(packet.extensions, "abs_capture_time", None)
            if stamp is not None:
                captured.setdefault(packet.timestamp, stamp)

        internals.tap_received_rtp(receiver, on_packet)
        await into.setLocalDescription(await into.createOffer())
        offer = re.sub(
            r"(a=extmap:\d+ http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n)",
            rf"\1a=extmap:14 {internals.ABS_CAPTURE_TIME_URI}\r\n",
            into.localDescription.sdp,
        )
        assert internals.ABS_CAPTURE_TIME_URI in offer
        await out.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        (transceiver,) = out.getTransceivers()
        prefer_codec(transceiver, "VP8")
        internals.answer_header_extension(
            transceiver, SessionDescription.parse(offer).media[0], internals.ABS_CAPTURE_TIME_URI
        )
        transceiver.sender.replaceTrack(Captured(160, 90))
        transceiver.direction = "sendonly"
        sender = transceiver.sender
        internals.send_stamped_payloads(sender)
        timeline = align_sender_reports(sender, 90000, times)
        await out.setLocalDescription(await out.createAnswer())
        internals.read_abs_capture_time(receiver.transport, 14)
        await into.setRemoteDescription(out.localDescription)
        await wait_for(lambda: len(captured) > 10 and len(reports) >= 2, timeout=10)
        assert internals.runs_stamped(sender)
        assert timeline.aligned >= 2
        origin = timeline.origin
        assert origin is not None
        # Each frame's abs-capture-time is its own capture time (frames told apart by the sender's
        # RTP origin; checked against every frame noted: on a slow run the first frames have left
        # the sender's CaptureTimes by the second report, which is what failed one run in eight).
        for timestamp, stamp in list(captured.items())[1:]:
            pts = (timestamp - origin) % 2**32
            assert pts in noted and abs(ntp_seconds(stamp) - noted[pts]) < 0.001, (pts, sorted(noted)[:3])
        report = reports[-1].sender_info
        mapping = CaptureClock(90000)
        mapping.on_sender_report(report.ntp_timestamp, report.rtp_timestamp)
        pts = (report.rtp_timestamp - origin) % 2**32
        frame = [p for p in range(pts - 45000, pts + 1) if p in noted][-1]
        # Unaligned, the report would say the send time, 200 ms after the capture.
        assert abs(mapping.capture_time((origin + frame) % 2**32) - noted[frame]) < 0.1
    finally:
        await out.close()
        await into.close()
