"""The capacity suite's client peers cost the machine little (benchmarks/capacity_clients.py)."""

from __future__ import annotations

import asyncio

from aiortc import RTCSessionDescription

from benchmarks.capacity_clients import _peer
from benchmarks.capacity_offer import offer_transport_cc
from media import aiortc_internals as internals
from media.browser import ToneTrack
from media.room import Room
from media.sources import TestCardTrack


async def test_a_client_peer_reads_its_datagrams_into_64_kib_as_the_servers_do() -> None:
    pc, _ = _peer("agent", {})
    try:
        await pc.setLocalDescription(await pc.createOffer())  # gathers: the sockets open
        sizes = internals.read_buffer_sizes(pc)
        assert sizes and all(size == 65536 for size in sizes), sizes
    finally:
        await pc.close()


async def test_an_agent_client_negotiates_transport_cc_as_a_browser_and_the_server_feeds_back() -> None:
    # aiortc offers no transport-cc: the server would run aiortc's REMB estimator for the clients,
    # work no browser gives it. The clients offer it and number their packets, as Chromium does.
    room = Room(label="capacity client", size="360p")
    pc, _ = _peer("agent", {"camera": TestCardTrack(320, 180, fps=15, label=""), "mic": ToneTrack(440)})
    try:
        await pc.setLocalDescription(await pc.createOffer())
        answer = await room.answer("agent", offer_transport_cc(pc.localDescription.sdp))
        assert answer.count(internals.TRANSPORT_CC_URI) == answer.count("\r\nm=")  # every section
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        feedback = room.feedback["agent"]
        async with asyncio.timeout(10):
            while feedback.packets_sent < 3:  # feedback goes out only on numbered packets received
                await asyncio.sleep(0.05)
    finally:
        await pc.close()
        await room.close()
