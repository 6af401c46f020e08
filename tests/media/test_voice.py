"""Voices forwarded as Opus packets: untouched payloads, one continuous timeline, nothing late."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from pathlib import Path

import pytest
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.rtp import RtpPacket

from media.browser import BrowserPeer, ToneTrack
from media.room import MediaError, Room
from media.sources import TestCardTrack
from media.voice import QUEUE_PACKETS, VoiceRelay
from media.voice_fanout import VoiceFanout
from tests.media.voice_loopback import until_received, voice_to_a_peer
from tests.turn_server import TURNSERVER, TurnServer


def opus(ssrc: int, seq: int, ts: int, payload: bytes) -> RtpPacket:
    packet = RtpPacket(payload_type=111, sequence_number=seq, timestamp=ts, ssrc=ssrc)
    packet.payload = payload
    return packet


async def drain(relay: VoiceRelay) -> list:
    out = []
    while not relay._queue.empty():
        out.append(await relay.next_packet())
    return out


async def test_payloads_go_through_untouched_on_the_speakers_timeline():
    relay = VoiceRelay()
    for n in range(3):
        relay._on_packet(opus(7, 100 + n, 5_000 + 960 * n, bytes([n]) * 40))
    packets = await drain(relay)
    assert [bytes(p) for p in packets] == [bytes([n]) * 40 for n in range(3)]
    assert [p.pts for p in packets] == [0, 960, 1920]


async def test_a_duplicate_or_late_packet_is_dropped_and_a_wrap_is_not_late():
    relay = VoiceRelay()
    relay._on_packet(opus(7, 1, 2**32 - 960, b"a"))
    relay._on_packet(opus(7, 2, 0, b"b"))  # the 32-bit timestamp wrapped: still the next packet
    relay._on_packet(opus(7, 2, 0, b"b"))  # a duplicate
    relay._on_packet(opus(7, 0, 2**32 - 1920, b"z"))  # older than what was sent on
    assert [p.pts for p in await drain(relay)] == [0, 960]
    assert relay.dropped == 2


async def test_a_new_speaker_continues_the_listeners_timeline():
    relay = VoiceRelay()
    relay._on_packet(opus(7, 1, 123_456, b"a"))
    relay._on_packet(opus(9, 500, 42, b"b"))  # a reload: new SSRC, unrelated timestamps
    first, second = await drain(relay)
    assert second.pts >= first.pts + 960  # never backwards, never overlapping


async def test_a_listener_that_falls_behind_gets_the_newest_packets_only():
    relay = VoiceRelay()
    for n in range(QUEUE_PACKETS + 3):
        relay._on_packet(opus(7, n, 960 * n, bytes([n])))
    packets = await drain(relay)
    assert len(packets) == QUEUE_PACKETS
    assert bytes(packets[-1]) == bytes([QUEUE_PACKETS + 2])
    assert relay.dropped == 3


async def test_an_offer_without_opus_gets_a_clear_error():
    peer = BrowserPeer.customer(mic=ToneTrack(440))
    room = Room(label="no-opus", size="360p")
    async with peer:
        lines = (await peer.offer()).split("\r\n")
        opus_type = next(line.split()[0].split(":")[1] for line in lines if "opus/48000" in line)
        no_opus = [
            " ".join(w for w in line.split() if w != opus_type) if line.startswith("m=audio") else line
            for line in lines
            if f":{opus_type} " not in line
        ]
        with pytest.raises(MediaError) as error:
            await room.answer("customer", "\r\n".join(no_opus))
    await room.close()
    assert error.value.code == "unsupported_codec"
    assert "Opus" in error.value.message


async def test_the_agents_voice_reaches_the_customer_without_being_decoded_on_the_server():
    room = Room(label="voice", size="360p")
    agent = BrowserPeer.agent(camera=TestCardTrack(320, 180, fps=15, label=""), mic=ToneTrack(440))
    customer = BrowserPeer.customer(mic=ToneTrack(880))
    async with agent, customer:
        await agent.negotiate(room.answer)
        await customer.negotiate(room.answer)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while customer.audio.loudness() < 500 or agent.audio.loudness() < 500:
            assert loop.time() < deadline, "no voice got through"
            await asyncio.sleep(0.05)
        assert room.to_customer_audio.relayed > 0 and room.to_agent_audio.relayed > 0
        # The server's audio receivers decode nothing: their tracks never give a frame.
        for pc in room.peers.values():
            audio = next(t for t in pc.getTransceivers() if t.kind == "audio")
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await audio.receiver.track.recv()
    await room.close()


async def test_a_relayed_voice_packet_leaves_from_the_speakers_receive_callback():
    # No queue and no wake-up of the listener's sender task a packet: the listener's track never
    # hands a packet to its sender, and the listener's reports still map to when it was spoken.
    room = Room(label="direct voice", size="360p")
    agent = BrowserPeer.agent(camera=TestCardTrack(320, 180, fps=15, label=""), mic=ToneTrack(440))
    customer = BrowserPeer.customer(mic=ToneTrack(880))
    handed_over = [0]
    async with agent, customer:
        await agent.negotiate(room.answer)
        await customer.negotiate(room.answer)
        audio = [next(t for t in pc.getTransceivers() if t.kind == "audio") for pc in room.peers.values()]
        senders = [transceiver.sender for transceiver in audio]
        for sender in senders:
            track = sender.track
            recv = track.recv

            async def counted(recv=recv):
                packet = await recv()
                handed_over[0] += 1
                return packet

            track.recv = counted
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        timelines = [sender._media_timeline for sender in senders]  # media.capture_clock's
        while customer.audio.loudness() < 500 or agent.audio.loudness() < 500 or not all(
            t.aligned for t in timelines
        ):
            assert loop.time() < deadline, "no voice, or no report on the speaker's capture clock"
            await asyncio.sleep(0.05)
        assert room.to_customer_audio.relayed > 20 and room.to_agent_audio.relayed > 20
        assert handed_over[0] == 0
    await room.close()


@pytest.mark.skipif(TURNSERVER is None, reason="no turnserver (apt-get install coturn)")
async def test_a_listener_relayed_through_turn_gets_every_packet_sent_directly(tmp_path: Path):
    # Through a TURN relay the direct path cannot send on the socket itself: aiortc's path sends.
    secret = "voice-turn-secret"
    with TurnServer(tmp_path / "coturn", secret=secret) as server:
        username = f"{int(time.time()) + 600}:voice"
        digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
        password = base64.b64encode(digest).decode()  # coturn's REST credentials
        relayed = RTCConfiguration(
            iceServers=[RTCIceServer(urls=server.url("udp"), username=username, credential=password)],
            iceTransportPolicy=RTCIceTransportPolicy.RELAY,
        )
        voice = VoiceFanout("relayed")
        async with voice_to_a_peer(voice.output, relayed) as payloads:
            for n in range(30):
                voice._on_packet(opus(7, n, 960 * n, bytes([n]) * 40))
            await until_received(payloads, 30)
        voice.close()
    assert payloads == [bytes([n]) * 40 for n in range(30)]
    assert voice.relayed == 30
