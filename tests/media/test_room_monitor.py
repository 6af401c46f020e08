"""The room's side of the supervisors' monitor (media.room_monitor): a monitor answered as the
room closes is refused, and a monitor's release leaves a newer monitor alone. Real rooms, real
aiortc peers on loopback."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from media.answer import MediaError
from media.room import Room


async def monitor_offer() -> tuple[RTCPeerConnection, str]:
    """A tap's offer, as telepresence.call_taps makes it: the picture, both voices."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    for _ in range(2):
        pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def test_a_monitor_answered_while_the_room_closes_is_refused_and_closed():
    room = Room(label="closing", agent_name="Ada", size="360p")
    tap, offer = await monitor_offer()
    try:
        answering = asyncio.get_running_loop().create_task(room.answer_monitor(offer))
        await asyncio.sleep(0)  # under way: its peer gathers candidates
        await room.close()
        with pytest.raises(MediaError) as refused:
            await answering
        assert refused.value.code == "call_ended"
        assert room.monitor_peer is None
        assert room.program.watched == 0  # no viewer of the closed program
    finally:
        await tap.close()
        await room.close()


async def test_releasing_a_replaced_monitor_leaves_the_newer_one():
    room = Room(label="two taps", agent_name="Ada", size="360p")
    older, newer = await monitor_offer(), await monitor_offer()
    try:
        older_answer = await room.answer_monitor(older[1])
        newer_answer = await room.answer_monitor(newer[1])  # replaces the older
        newer_peer = room.monitor_peer
        await room.release_monitor(older_answer)  # the older tap closing late
        assert room.monitor_peer is newer_peer and newer_peer is not None
        assert newer_peer.connectionState != "closed"
        await room.release_monitor(newer_answer)
        assert room.monitor_peer is None
    finally:
        for pc, _ in (older, newer):
            await pc.close()
        await room.close()
