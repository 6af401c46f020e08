"""A program to several viewers' senders (the WHEP host's shape): each frame is encoded once AND
cut into RTP payloads once; each viewer still gets its own retransmissions, its keyframe
requests still reach the one encoder, and a viewer that falls behind skips to a keyframe."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtpPacket

from media import aiortc_internals as internals
from media.packetized import PacketizedFrame
from media.peers import enable_low_latency_receive, prefer_codec, tune_video_sender
from media.program import Program
from media.sources import TestCardTrack
from media.tracks import FrameSlot, TrackDrain
from tests.media.test_room import wait_for


@pytest.fixture
def packs(monkeypatch) -> list[object]:
    """Every frame cut into RTP payloads in the process (aiortc's VP8 and H.264 ``pack``, which
    every sender's encoder inherits), by the object that cut it."""
    calls: list[object] = []
    for cls in (Vp8Encoder, H264Encoder):

        def counting(self, packet, original=cls.pack):
            calls.append(self)
            return original(self, packet)

        monkeypatch.setattr(cls, "pack", counting)
    return calls


@dataclass
class Viewer:
    sender: RTCRtpSender
    receiver: RTCRtpReceiver
    slot: FrameSlot


@contextlib.asynccontextmanager
async def watched(count: int, codec: str):
    """A 320x240 test card's program, watched by ``count`` real loopback peers, as the WHEP door
    sets them up (the program's viewer on a send-only transceiver, the tuned sender)."""
    card = TestCardTrack(320, 240)
    program = Program(card, label="test program")
    peers: list[RTCPeerConnection] = []
    drains: list[TrackDrain] = []
    viewers = []
    try:
        for index in range(count):
            out, into = (
                RTCPeerConnection(RTCConfiguration(iceServers=[])),
                RTCPeerConnection(RTCConfiguration(iceServers=[])),
            )
            peers += [out, into]
            transceiver = out.addTransceiver("video", direction="sendonly")
            prefer_codec(transceiver, codec)
            transceiver.sender.replaceTrack(program.viewer(transceiver.sender, codec, steers=False))
            tune_video_sender(transceiver.sender)
            slot = FrameSlot(f"viewer {index}")
            into.on("track", lambda track, slot=slot: drains.append(TrackDrain(track, slot)))
            enable_low_latency_receive(into)
            await out.setLocalDescription(await out.createOffer())
            await into.setRemoteDescription(out.localDescription)
            await into.setLocalDescription(await into.createAnswer())
            await out.setRemoteDescription(into.localDescription)
            viewers.append(Viewer(transceiver.sender, into.getTransceivers()[0].receiver, slot))
        yield program, viewers
    finally:
        for drain in drains:
            await drain.stop()
        for pc in peers:
            await pc.close()
        await program.close()
        card.stop()


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_each_frame_is_packetized_once_for_every_viewer(codec, packs):
    async with watched(3, codec) as (program, viewers):
        await wait_for(lambda: all(v.slot.received > 10 for v in viewers))
        cut, encoded = len(packs), program.encodes
        seen = [v.slot.received for v in viewers]
        await wait_for(lambda: all(v.slot.received > s + 20 for v, s in zip(viewers, seen, strict=True)))
        # One cut a frame, whatever the number of viewers (was: one a viewer, by each sender).
        assert len(packs) - cut in range(program.encodes - encoded - 1, program.encodes - encoded + 2)
        assert {id(p) for p in packs[cut:]} == {id(program.packetizers[codec]._packer)}
        assert all(internals.runs_stamped(v.sender) for v in viewers)  # each only stamps and sends
        assert all(v.slot.latest.frame.width == 320 for v in viewers)


async def test_a_lost_packet_is_retransmitted_to_its_viewer_alone():
    async with watched(2, "VP8") as (program, (lossy, clean)):
        await wait_for(lambda: lossy.slot.received > 5 and clean.slot.received > 5)
        dropped: set[int] = set()
        count = iter(range(1_000_000))

        def drop(packet: RtpPacket) -> bool:
            if internals.media_ssrc(lossy.receiver, packet) is None:
                return False  # a retransmission: let it through
            if next(count) % 10 == 5 and packet.sequence_number not in dropped and len(dropped) < 6:
                dropped.add(packet.sequence_number)
                return True
            return False

        internals.drop_received_rtp(lossy.receiver, drop)
        nacks = internals.nack_generator(lossy.receiver)
        assert nacks is not None
        # Every lost packet comes back, from that viewer's sender's history.
        await wait_for(lambda: len(dropped) == 6 and nacks.repairs == 6)
        assert internals.nack_generator(clean.receiver).repairs == 0
        shown = lossy.slot.received
        await wait_for(lambda: lossy.slot.received > shown + 10)


async def test_a_keyframe_request_from_any_viewer_reaches_the_one_encoder(monkeypatch):
    async with watched(3, "VP8") as (program, viewers):
        await wait_for(lambda: all(v.slot.received > 5 for v in viewers))
        encoder = program.encoders["VP8"]
        forced: list[bool] = []
        encode = encoder.encode

        def noting(frame, force_keyframe=False):
            forced.append(force_keyframe)
            return encode(frame, force_keyframe)

        monkeypatch.setattr(encoder, "encode", noting)
        for viewer in viewers:
            await wait_for(lambda: len(forced) > 3)
            forced.clear()
            await internals.send_pli(viewer.receiver, internals.ssrc(viewer.sender))  # over the wire
            await wait_for(lambda: any(forced))


async def test_a_viewer_that_falls_behind_skips_to_a_keyframe():
    async with watched(1, "VP8") as (program, (watching,)):
        # A second viewer whose sender never starts: nothing reads its frames.
        idle = RTCPeerConnection()
        try:
            transceiver = idle.addTransceiver("video", direction="sendonly")
            behind = program.viewer(transceiver.sender, "VP8", steers=False)
            shown = watching.slot.received
            await wait_for(lambda: watching.slot.received > shown + 15)
            assert behind.queue.skipped > 0 and len(behind.queue) <= 2  # dropped, never queued up
            frame = await behind.recv()
            assert isinstance(frame, PacketizedFrame) and frame.is_keyframe  # it resumes on a keyframe
            assert frame.payloads[0][4] & 0x01 == 0  # VP8's frame tag, past the 4-byte descriptor: key
        finally:
            await idle.close()


async def test_a_frame_that_cannot_be_packetized_is_skipped_and_the_picture_goes_on(monkeypatch, caplog):
    # aiortc's H.264 packetizer raises on an empty NAL unit, which a forwarded camera frame can
    # carry (a STAP-A with a zero-length unit); once, the program's pump died and every viewer froze.
    failures = iter([IndexError("list index out of range")])

    def sometimes_failing(self, packet, original=Vp8Encoder.pack):
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return original(self, packet)

    async with watched(2, "VP8") as (program, viewers):
        await wait_for(lambda: all(v.slot.received > 5 for v in viewers))
        monkeypatch.setattr(Vp8Encoder, "pack", sometimes_failing)
        seen = [v.slot.received for v in viewers]
        await wait_for(lambda: all(v.slot.received > s + 20 for v, s in zip(viewers, seen, strict=True)))
        assert next(failures, None) is None  # the failing frame came and went
        assert "could not be packetized" in caplog.text
