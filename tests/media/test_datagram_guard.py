"""One stray datagram must not end a stock aiortc peer's media (media/aiortc_internals/_datagram_guard.py):
every peer the server answers (WHIP/WHEP doors, hosts, monitors, taps) is guarded."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

from aiortc import RTCPeerConnection

from media import aiortc_internals as internals
from media.aiortc_internals._datagram_guard import harmful
from media.answer import close_peer, receive_offer
from media.testing import LoopbackCall, TestCardTrack


def send_to_host_candidates(pc: RTCPeerConnection, *datagrams: bytes) -> None:
    ice = pc.getTransceivers()[0].sender.transport.transport
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as anyone:
        for candidate in ice.iceGatherer.getLocalCandidates():
            if candidate.type == "host" and ":" not in candidate.ip:
                for data in datagrams:
                    anyone.sendto(data, (candidate.ip, candidate.port))


async def test_an_empty_or_oversized_datagram_leaves_a_sending_peer_sending() -> None:
    # The sending peer is what a WHEP viewer's server side is: stock aiortc, sending only.
    async with LoopbackCall([TestCardTrack()], codec="VP8") as call:
        internals.guard_received_datagrams(call.sender)
        await call.wait_frames(3)
        # Each of these ended stock aiortc's DTLS receive task, and the peer with it.
        send_to_host_candidates(call.sender, b"", b"\x80" + bytes(1999), b"\x81\xc8" + bytes(1999))
        await asyncio.sleep(0.5)
        await call.wait_frames(call.slots[0].received + 10)
        transport = call.sender.getTransceivers()[0].sender.transport
        assert transport.state == "connected" and call.sender.connectionState == "connected"


def test_what_is_harmful() -> None:
    assert harmful(b"") and harmful(b"\x80" + bytes(1500)) and harmful(b"\xbf" + bytes(1500))
    assert not harmful(b"\x80" + bytes(1499))  # fits SRTP's buffer: SRTP refuses it, as it should
    assert not harmful(b"\x17" + bytes(3000))  # DTLS: OpenSSL reads what it can
    assert not harmful(b"\x00")  # STUN never gets here; anything else is dropped by aiortc


@contextlib.asynccontextmanager
async def answered_peer() -> AsyncIterator[tuple[RTCPeerConnection, RTCPeerConnection]]:
    """A peer as media.answer answers an audio and video offer, and the offerer."""
    offerer = RTCPeerConnection()
    offerer.addTransceiver("audio")
    offerer.addTransceiver("video")
    await offerer.setLocalDescription(await offerer.createOffer())
    pc, _, _ = await receive_offer(offerer.localDescription.sdp)
    try:
        yield pc, offerer
    finally:
        await close_peer(pc)
        await offerer.close()


async def test_every_answered_peer_is_guarded() -> None:
    async with answered_peer() as (pc, _):
        assert internals.is_guarded(pc)
