"""A listener's voice sender on a loopback peer pair, for the voice tests: the sender's track is
``output(sender)`` of a relay, the receiving peer collects the RTP payloads it gets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from media import aiortc_internals as internals


@contextlib.asynccontextmanager
async def voice_to_a_peer(
    output: Callable[[RTCRtpSender], MediaStreamTrack], config: RTCConfiguration | None = None
) -> AsyncIterator[list[bytes]]:
    """Yields the payloads the receiving peer got, once the pair is connected and sending."""
    sender_pc, receiver_pc = RTCPeerConnection(config), RTCPeerConnection()
    payloads: list[bytes] = []
    track: MediaStreamTrack | None = None
    try:
        transceiver = sender_pc.addTransceiver("audio", direction="sendonly")
        track = output(transceiver.sender)
        transceiver.sender.replaceTrack(track)
        await sender_pc.setLocalDescription(await sender_pc.createOffer())
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        receiver = receiver_pc.getTransceivers()[0].receiver
        internals.tap_received_rtp(receiver, lambda packet: payloads.append(packet.payload))
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        await sender_pc.setRemoteDescription(
            RTCSessionDescription(sdp=receiver_pc.localDescription.sdp, type="answer")
        )
        async with asyncio.timeout(15):
            while transceiver.sender.transport.state != "connected":
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)  # the sender's stream starts as it connects
        yield payloads
    finally:
        if track is not None:
            track.stop()
        await sender_pc.close()
        await receiver_pc.close()


async def until_received(payloads: list[bytes], count: int) -> None:
    async with asyncio.timeout(5):
        while len(payloads) < count:
            await asyncio.sleep(0.02)
