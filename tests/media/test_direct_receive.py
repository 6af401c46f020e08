"""SRTP handled in the socket's callback (media/aiortc_internals/_direct_receive.py), on real loopback
peers: everything aiortc's receive path did still happens (frames, RTCP, NACK and retransmission,
the transport's counters), and a handler that waits
holds the datagrams behind it, in order, as aiortc's task did."""

from __future__ import annotations

import asyncio
import socket

from aiortc.utils import uint16_add

from media import aiortc_internals as internals
from media.browser import BrowserPeer, ToneTrack
from media.room import Room
from media.testing import LoopbackCall, TestCardTrack
from tests.media.test_receive import camera_ends, lose_packets_and_see_them_repaired
from tests.media.test_room import wait_for


async def stats_of(receiver, kind: str) -> list:
    return [s for s in (await receiver.getStats()).values() if s.type == kind]


async def test_frames_rtcp_and_repairs_still_happen_when_srtp_is_handled_as_it_arrives() -> None:
    async with LoopbackCall([TestCardTrack(), TestCardTrack()], codec="VP8") as call:
        transport = call.receiver.getTransceivers()[0].receiver.transport
        direct = internals.receive_directly(transport)
        try:
            await call.wait_frames(5)
            handled = direct.handled
            await lose_packets_and_see_them_repaired(call)  # NACKed and retransmitted
            _, receiver, _ = camera_ends(call)
            # The sender's reports reached the receiver (SRTCP, handled here too).
            for _ in range(100):
                if await stats_of(receiver, "remote-outbound-rtp"):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("no sender report reached the receiver")
            # ... all of it here; the transport's counters still count it.
            assert direct.handled > handled + 100
            [transport_stats] = await stats_of(receiver, "transport")
            assert transport_stats.packetsReceived >= direct.handled
            assert transport_stats.bytesReceived > 100 * direct.handled
        finally:
            await direct.stop()
        # Undone: aiortc's own path takes over again, and frames keep coming.
        handled = direct.handled
        await call.wait_frames(call.slots[0].received + 5)
        assert direct.handled == handled


async def test_junk_sent_to_the_peers_port_is_dropped_and_media_goes_on() -> None:
    async with LoopbackCall([TestCardTrack()], codec="VP8") as call:
        transport = call.receiver.getTransceivers()[0].receiver.transport
        direct = internals.receive_directly(transport)
        try:
            await call.wait_frames(3)
            candidates = transport.transport.iceGatherer.getLocalCandidates()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as anyone:
                for candidate in candidates:
                    if candidate.type == "host" and ":" not in candidate.ip:
                        address = (candidate.ip, candidate.port)
                        anyone.sendto(b"", address)  # stock aiortc's transport died of this one
                        anyone.sendto(b"\x80" + bytes(40), address)  # RTP-like, fails SRTP
                        anyone.sendto(b"\x81\xc8" + bytes(40), address)  # SRTCP-like, fails SRTP
                        anyone.sendto(b"\x80" + bytes(1600), address)  # past pylibsrtp's buffer: ValueError
            await wait_for(lambda: direct.dropped >= 4)
            await call.wait_frames(call.slots[0].received + 10)
            assert transport.state == "connected"
        finally:
            await direct.stop()


async def test_datagrams_wait_in_order_behind_a_handler_that_waits_and_stop_cancels_it() -> None:
    async with LoopbackCall([TestCardTrack()], codec="VP8") as call:
        transport = call.receiver.getTransceivers()[0].receiver.transport
        receiver = call.receiver.getTransceivers()[0].receiver
        direct = internals.receive_directly(transport)
        gate = asyncio.Event()
        held = asyncio.Event()
        sequences: list[int] = []

        async def hold_first_rtcp(_transport, _data: bytes) -> None:
            if not held.is_set():
                held.set()
                await gate.wait()

        internals.tap_received_rtp(receiver, lambda packet: sequences.append(packet.sequence_number))
        try:
            await call.wait_frames(3)
            undo = internals.watch_received_rtcp_data(transport, hold_first_rtcp)
            await asyncio.wait_for(held.wait(), 10)  # an SRTCP datagram's handler now waits
            seen = len(sequences)
            await asyncio.sleep(0.3)
            assert len(sequences) == seen  # nothing handled past it ...
            assert len(direct._waiting or ()) > 5  # ... the RTP that came waits behind it
            gate.set()
            await wait_for(lambda: len(sequences) > seen + 10)
            # In order, as they arrived: no packet jumped the queue or was lost.
            steps = {uint16_add(b, -a) for a, b in zip(sequences[seen - 1 :], sequences[seen:], strict=False)}
            assert steps <= {1}, steps
            await call.wait_frames(call.slots[0].received + 5)  # frames go on

            # A handler still waiting when the peer goes: stop() cancels and awaits it.
            gate.clear()
            held.clear()
            await asyncio.wait_for(held.wait(), 10)
            task = direct._finishing
            assert task is not None and not task.done()
            await direct.stop()
            assert task.cancelled()
            undo()
        finally:
            gate.set()
            await direct.stop()


async def test_a_rooms_peers_receive_directly_and_its_voices_leave_through_the_stamped_loop() -> None:
    room = Room(label="direct", size="360p", fps=30)
    agent = BrowserPeer.agent(camera=TestCardTrack(320, 180, fps=30, label=""), mic=ToneTrack(440))
    customer = BrowserPeer.customer(mic=ToneTrack(880))
    try:
        async with agent, customer:
            await agent.negotiate(room.answer)
            await customer.negotiate(room.answer)
            await customer.video(0).wait(10)
            await wait_for(lambda: customer.audio.loudness() > 500)
            await wait_for(lambda: agent.audio.loudness() > 500)
            # Both voices leave through the stamped loop, both peers' SRTP is handled as it arrives.
            assert internals.runs_stamped(room.agent_sections["mic"].sender)
            customer_mic = next(t for t in room.peers["customer"].getTransceivers() if t.kind == "audio")
            assert internals.runs_stamped(customer_mic.sender)
            assert set(room._direct_receive) == {"agent", "customer"}
            await wait_for(lambda: all(direct.handled > 50 for direct in room._direct_receive.values()))
            # (transport-cc's kernel arrival stamps with it: tests/browser/test_bandwidth.py, Chromium.)
    finally:
        await room.close()
    assert not room._direct_receive


async def test_a_wait_its_owner_cancels_ends_that_handler_only_and_media_goes_on() -> None:
    async with LoopbackCall([TestCardTrack()], codec="VP8") as call:
        transport = call.receiver.getTransceivers()[0].receiver.transport
        direct = internals.receive_directly(transport)
        waited: list[asyncio.Future] = []
        heard: list[BaseException] = []

        async def wait_once(_transport, _data: bytes) -> None:
            if not waited:  # e.g. a send waiting on something another task owns
                waited.append(asyncio.get_running_loop().create_future())
                try:
                    await waited[0]
                except asyncio.CancelledError as exc:
                    heard.append(exc)
                    raise

        try:
            await call.wait_frames(3)
            undo = internals.watch_received_rtcp_data(transport, wait_once)
            await wait_for(lambda: bool(waited))
            waited[0].cancel()  # by its owner, not by stop()
            await wait_for(lambda: direct._waiting is None)  # the datagrams held behind it went on
            assert heard, "the handler heard its wait cancelled"
            await call.wait_frames(call.slots[0].received + 10)
            undo()
        finally:
            await direct.stop()
