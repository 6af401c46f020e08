"""Kernel receive times for transport-cc feedback (media/aiortc_internals/_arrivals.py)."""

from __future__ import annotations

import asyncio
import socket
import time

from aiortc import RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtcpRrPacket, RtpPacket

from media import aiortc_internals as internals

EXTENSION_ID = 5


def rtp_with_sequence(transport_sequence: int, extension_id: int = EXTENSION_ID) -> bytes:
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=4, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(id=extension_id, uri=internals.TRANSPORT_CC_URI),
            ]
        )
    )
    packet = RtpPacket(payload_type=96, sequence_number=7, timestamp=9, ssrc=11, payload=b"\x00" * 900)
    packet.extensions.mid = "0"
    packet.extensions.transport_sequence_number = transport_sequence
    return packet.serialize(extensions)


def test_the_transport_sequence_number_is_read_from_the_clear_header():
    assert internals.transport_sequence_number(rtp_with_sequence(0xBEEF), EXTENSION_ID) == 0xBEEF
    assert internals.transport_sequence_number(rtp_with_sequence(3, extension_id=6), EXTENSION_ID) is None
    plain = RtpPacket(payload_type=96, sequence_number=1, payload=b"x").serialize()
    assert internals.transport_sequence_number(plain, EXTENSION_ID) is None  # no extensions
    rtcp = bytes(RtcpRrPacket(ssrc=1))
    assert internals.transport_sequence_number(rtcp, EXTENSION_ID) is None
    for junk in (b"", b"\x90", rtp_with_sequence(1)[:14], b"\x16\xfe\xfd" + bytes(20)):  # short, DTLS
        assert internals.transport_sequence_number(junk, EXTENSION_ID) is None
    # Unauthenticated bytes from anyone: a two-byte-header element running past its block.
    overlong = bytes([0x90, 96, 0, 1]) + bytes(8) + bytes([0x10, 0x00, 0, 1]) + bytes([EXTENSION_ID])
    assert internals.transport_sequence_number(overlong, EXTENSION_ID) is None


async def stamps_are_live(sender: socket.socket, address: tuple[str, int], stamps) -> None:
    """Until the kernel stamps datagrams as they come: the first socket on a machine to ask for
    timestamps turns them on for every packet through a kernel work item, which a busy machine
    runs late; meanwhile a datagram's stamp is the moment it was read."""
    for sequence in range(1000, 1040):
        sender.sendto(rtp_with_sequence(sequence), address)
        time.sleep(0.02)  # noqa: ASYNC251 (the datagram waits in the socket)
        await asyncio.sleep(0.01)
        arrival_ms = stamps.take(sequence)
        if arrival_ms is not None and time.monotonic() * 1000 - arrival_ms >= 20:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the kernel never stamped a datagram with its arrival")


async def test_a_packet_read_late_by_a_busy_loop_keeps_the_time_it_reached_the_machine():
    pc = RTCPeerConnection()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        pc.addTransceiver("video")
        await pc.setLocalDescription(await pc.createOffer())  # gathers the host candidates
        transport = pc.getTransceivers()[0].sender.transport
        stamps = internals.ArrivalStamps(EXTENSION_ID)
        undo = internals.stamp_arrivals(transport, stamps)
        candidates = transport.transport.iceGatherer.getLocalCandidates()
        host = next(c for c in candidates if c.type == "host" and ":" not in c.ip)

        await stamps_are_live(sender, (host.ip, host.port), stamps)

        sent_ms = time.monotonic() * 1000
        sender.sendto(rtp_with_sequence(41), (host.ip, host.port))
        time.sleep(0.3)  # noqa: ASYNC251 (the point: a busy event loop, the datagram waits in the socket)
        await asyncio.sleep(0.05)
        read_ms = time.monotonic() * 1000
        arrival_ms = stamps.take(41)
        assert arrival_ms is not None, "the datagram was not stamped"
        assert sent_ms - 5 <= arrival_ms <= sent_ms + 100, (arrival_ms - sent_ms, read_ms - sent_ms)
        assert stamps.take(41) is None  # taken once

        undo()
        sender.sendto(rtp_with_sequence(42), (host.ip, host.port))
        await asyncio.sleep(0.05)
        assert stamps.take(42) is None
    finally:
        sender.close()
        await pc.close()


def test_stamps_never_taken_are_bounded():
    stamps = internals.ArrivalStamps(EXTENSION_ID)
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        receiver.bind(("127.0.0.1", 0))
        for sequence in range(3000):
            data = rtp_with_sequence(sequence)
            sender.sendto(data, receiver.getsockname())
            receiver.recv(2048)
            stamps.stamp(data, receiver.fileno())
    assert len(stamps._pending) <= 1024
    assert stamps.take(2999) is not None and stamps.take(2000) is not None  # the newest kept
    assert stamps.take(0) is None
