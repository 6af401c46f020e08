"""The customer's camera and screen reach the agent as the encoded frames they came in (media.forward)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import av
import pytest
from aiortc import RTCRtpSender

from media import aiortc_internals as internals
from media.bitrate import RateGovernor
from media.browser import BrowserPeer
from media.encoded import KeyframeQueue
from media.planes import frame_planes
from media.room import Room
from media.sources import ScreenTrack, TestCardTrack
from media.stamp import read_stamp
from tests.media.test_room import wait_for

CAMERA, SCREEN = 2, 3  # the agent's video sections: camera (preview back), screen, customer_camera, ...
KEY, DELTA = b"\x10\x02\x00\x9d\x01\x2a", b"\x31\x02\x00"  # VP8 frame tags


def customer_peer(tint=(0, 200, 0), screen: bool = True, only: str | None = None) -> BrowserPeer:
    """A customer with a stamped camera (and a screen); ``only`` restricts its video sections to one codec."""
    peer = BrowserPeer.customer(
        camera=TestCardTrack(640, 360, fps=30, stamp=True, label="", tint=tint),
        screen=ScreenTrack(640, 360, fps=5) if screen else None,
    )
    if only is not None:
        codecs = RTCRtpSender.getCapabilities("video").codecs
        wanted = [c for c in codecs if c.mimeType.upper() == f"VIDEO/{only}"]
        rtx = [c for c in codecs if c.mimeType.lower() == "video/rtx"]
        for transceiver in peer.pc.getTransceivers():
            if transceiver.kind == "video":
                transceiver.setCodecPreferences(wanted + rtx)
    return peer


@contextlib.asynccontextmanager
async def call(codec: str = "VP8", customer_first: bool = False, **customer):
    room = Room(label="forward", size="360p", codec=codec)
    agent = BrowserPeer.agent(camera=TestCardTrack(320, 180, fps=15, label=""))
    peer = customer_peer(**customer)
    try:
        async with agent, peer:
            first, second = (peer, agent) if customer_first else (agent, peer)
            await first.negotiate(room.answer)  # by default the agent: the source comes later
            if customer_first:
                await asyncio.sleep(0.5)  # the customer's stream is well under way
            await second.negotiate(room.answer)
            yield room, agent, peer
    finally:
        await room.close()


def mean_v(frame) -> float:
    _, _, v = frame_planes(frame)
    return float(v[v.shape[0] * 7 // 8 :, :].mean())  # the test card's tinted band


def camera_sender(customer: BrowserPeer):
    return next(t.sender for t in customer.pc.getTransceivers() if t.kind == "video" and t.sender.track)


def server_receiver(room: Room, section: int):
    videos = [t for t in room.peers["customer"].getTransceivers() if t.kind == "video"]
    return videos[section].receiver


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_the_customers_camera_and_screen_reach_the_agent_without_being_decoded(codec):
    async with call(codec) as (room, agent, _):
        camera = await agent.video(CAMERA).wait(10)
        screen = await agent.video(SCREEN).wait(10)
        assert (camera.width, camera.height) == (screen.width, screen.height) == (640, 360)
        await wait_for(lambda: room.customer_camera.forwarded > 30 and room.customer_screen.forwarded > 3)
        assert room.customer_camera.mode == room.customer_screen.mode == "forward"
        assert agent.codec(CAMERA) == codec
        frame = await agent.video(CAMERA).next_frame()
        assert read_stamp(frame) is not None  # the customer's own pixels, stamp and all
        # The server's receivers of both never fed their decoders: their tracks give no frame.
        for section in (0, 1):  # its camera and its screen
            receiver = server_receiver(room, section)
            assert internals.jitter_buffer(receiver).to_decoder == 0
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await receiver.track.recv()
        assert room.customer_camera.fallbacks == 0
        assert agent.video(CAMERA).darkest_mean > 40 and agent.video(SCREEN).darkest_mean > 40


async def test_the_agents_picture_loss_reports_reach_the_customers_camera():
    async with call() as (room, agent, customer):
        await wait_for(lambda: room.customer_camera.forwarded > 10)
        asked = []
        sender = camera_sender(customer)

        def count(send_keyframe):
            def counted() -> None:
                asked.append(1)
                send_keyframe()

            return counted

        internals.wrap_keyframe_request(sender, count)
        receiver = [t for t in agent.pc.getTransceivers() if t.kind == "video"][CAMERA].receiver
        (source,) = receiver.getSynchronizationSources()
        for _ in range(3):
            await internals.send_pli(receiver, source.source)
            await asyncio.sleep(0.4)  # the server passes on at most one request every 0.3 s
        await wait_for(lambda: len(asked) >= 3)
        assert agent.video(CAMERA).darkest_mean > 40


async def test_the_source_comes_late_goes_away_and_comes_back_on_the_same_outgoing_track(caplog):
    caplog.set_level(logging.WARNING)
    room = Room(label="forward", size="360p")
    agent = BrowserPeer.agent(camera=TestCardTrack(320, 180, fps=15, label=""))
    try:
        async with agent:
            await agent.negotiate(room.answer)
            outgoing = list(room._outgoing["agent"])
            async with BrowserPeer.customer() as no_camera:  # a customer with no camera yet
                await no_camera.negotiate(room.answer)
                await no_camera.video(0).wait(10)
                assert agent.video(CAMERA).count == 0 and room.customer_camera.mode is None
                async with customer_peer(tint=(0, 200, 0)) as green:  # its reload, with the camera
                    await green.negotiate(room.answer)
                    await wait_for(lambda: agent.video(CAMERA).count > 10)
                    green_v = mean_v(agent.video(CAMERA).latest)
                    async with customer_peer(tint=(200, 0, 0)) as red:  # and another: a new SSRC
                        await red.negotiate(room.answer)
                        await wait_for(lambda: abs(mean_v(agent.video(CAMERA).latest) - green_v) > 40)
                        seen = agent.video(CAMERA).count
                        await wait_for(lambda: agent.video(CAMERA).count > seen + 15)
            assert room._outgoing["agent"] == outgoing  # the agent's side never changed
            assert all(track.readyState == "live" for track in outgoing)
            assert room.customer_camera.fallbacks == 0
            assert agent.video(CAMERA).darkest_mean > 40
            # Every forwarded stream started on a keyframe: the agent's decoder never failed.
            assert "failed to decode" not in caplog.text
    finally:
        await room.close()


async def test_an_agent_reload_gets_the_customers_camera_again():
    async with call() as (room, agent, customer):
        await wait_for(lambda: agent.video(CAMERA).count > 10)
        async with BrowserPeer.agent(camera=TestCardTrack(320, 180, fps=15, label="")) as again:
            await again.negotiate(room.answer)
            await wait_for(lambda: again.video(CAMERA).count > 10)
            assert read_stamp(again.video(CAMERA).latest) is not None
            assert room.customer_camera.mode == "forward" and room.customer_camera.fallbacks == 0
            assert again.video(CAMERA).darkest_mean > 40


@pytest.mark.parametrize("customer_first", [False, True], ids=["agent-first", "customer-first"])
async def test_a_codec_the_two_sides_do_not_share_is_decoded_and_encoded_again(caplog, customer_first):
    caplog.set_level(logging.INFO)
    async with call("H264", customer_first, only="VP8") as (room, agent, customer):
        assert customer.codec(0) == "VP8" and agent.codec(CAMERA) == "H264"
        await wait_for(lambda: agent.video(CAMERA).count > 20)
        assert room.customer_camera.mode == "decode" and room.customer_camera.fallbacks == 1
        assert internals.jitter_buffer(server_receiver(room, 0)).to_decoder > 0
        assert read_stamp(agent.video(CAMERA).latest) is not None
        assert agent.video(CAMERA).darkest_mean > 40
        assert "decoding and encoding it again" in caplog.text
        assert "failed to decode" not in caplog.text  # the server's decoder started on a keyframe


async def test_the_agents_estimate_caps_the_customers_camera(monkeypatch):
    async with call() as (room, agent, customer):
        await wait_for(lambda: room.customer_camera.forwarded > 10)

        # From now on the agent's browser says it can take 300 kbps of the customer's camera.
        def says_300_kbps(governor, bps, now):
            governor.last_estimate = 300_000.0
            return governor.running

        monkeypatch.setattr(RateGovernor, "estimate", says_300_kbps)
        sender = [t for t in room.peers["agent"].getTransceivers() if t.kind == "video"][CAMERA].sender
        internals.encoder(sender).governor.last_estimate = 300_000.0
        camera = camera_sender(customer)
        # The customer's (aiortc) sender takes the REMB the server passes on: at most 300 kbps.
        await wait_for(lambda: getattr(internals.encoder(camera), "target_bitrate", None) == 300_000)


def packet(data: bytes) -> av.Packet:
    return av.Packet(data)


def test_a_sender_that_falls_behind_skips_to_the_next_keyframe_and_asks_for_one():
    queue = KeyframeQueue(size=3)
    # Before any keyframe nothing goes out, and each delta frame says: ask for a keyframe.
    assert queue.put(packet(DELTA), keyframe=False) and len(queue) == 0
    assert not queue.put(packet(KEY), keyframe=True)
    assert not queue.put(packet(DELTA), keyframe=False) and not queue.put(packet(DELTA), keyframe=False)
    assert len(queue) == 3
    # One more than the sender is behind by: everything waiting goes, and a keyframe is asked for.
    assert queue.put(packet(DELTA), keyframe=False) and len(queue) == 0
    assert queue.put(packet(DELTA), keyframe=False) and len(queue) == 0
    assert queue.skipped == 1 + 3 + 1 + 1
    # The next keyframe starts the stream again; a keyframe also drops what it makes stale.
    assert not queue.put(packet(KEY), keyframe=True) and not queue.put(packet(DELTA), keyframe=False)
    assert not queue.put(packet(KEY + b"2"), keyframe=True)
    assert bytes(queue.get()) == KEY + b"2" and queue.get() is None
    # A new source: start again on its keyframe.
    queue.put(packet(DELTA), keyframe=False)
    queue.restart()
    assert queue.waiting and len(queue) == 0
