"""The agent's own frames go to the customer while the composite would be exactly them."""

from __future__ import annotations

import contextlib

import pytest

from media import aiortc_internals as internals
from media.bitrate import RateGovernor
from media.browser import BrowserPeer, ToneTrack
from media.encoded import is_keyframe
from media.room import Room
from media.sources import TestCardTrack
from media.stamp import read_stamp
from tests.media.test_room import wait_for


def test_keyframes_are_told_apart_in_h264_and_vp8():
    idr = b"\x00\x00\x00\x01\x67\x42" + b"\x00\x00\x00\x01\x68\xce" + b"\x00\x00\x01\x65\x88\x84"
    slice_ = b"\x00\x00\x00\x01\x41\x9a\x02"
    assert is_keyframe("H264", idr) and not is_keyframe("H264", slice_)
    assert not is_keyframe("H264", b"") and not is_keyframe("H264", b"\x00\x00\x01")
    assert is_keyframe("VP8", b"\x10\x02\x00\x9d\x01\x2a") and not is_keyframe("VP8", b"\x31\x02\x00")
    assert not is_keyframe("VP8", b"")


@contextlib.asynccontextmanager
async def call(codec: str = "VP8", camera_size: tuple[int, int] = (640, 360), stamp: bool = False):
    """A 360p room with an aiortc agent (its camera at ``camera_size``) and customer, connected."""
    room = Room(label="passthrough", size="360p", codec=codec)
    camera = TestCardTrack(*camera_size, fps=30, stamp=stamp, label="")
    agent = BrowserPeer.agent(camera=camera, mic=ToneTrack(440))
    customer = BrowserPeer.customer()
    try:
        async with agent, customer:
            await agent.negotiate(room.answer)
            await customer.negotiate(room.answer)
            yield room, agent, customer
    finally:
        await room.close()


@pytest.mark.parametrize("codec", ["H264", "VP8"])
async def test_the_camera_is_forwarded_in_the_agent_layout_and_composited_in_others(codec):
    async with call(codec, stamp=True) as (room, _, customer):
        passthrough = room.passthrough
        await wait_for(lambda: passthrough.forwarded > 20)
        # What the customer sees is the agent's camera, stamps and all, at the composite's size.
        frame = await customer.video(0).next_frame()
        assert (frame.width, frame.height) == (640, 360)
        assert read_stamp(frame) is not None
        # Another layout: back to the composite, with no gap in the picture.
        room.set_layout("side_by_side")
        await wait_for(lambda: not room.passthrough_active)
        forwarded, shown = passthrough.forwarded, customer.video(0).count
        await wait_for(lambda: customer.video(0).count > shown + 15)
        assert passthrough.forwarded == forwarded
        # And forwarding again once the agent is alone again (after the cross-fade).
        room.set_layout("agent")
        await wait_for(lambda: passthrough.forwarded > forwarded + 10)
        assert passthrough.switches >= 2
        assert customer.video(0).darkest_mean > 40  # never a black frame on the way


async def test_a_camera_at_another_size_is_always_composited():
    async with call("H264", camera_size=(320, 180)) as (room, _, customer):
        frame = await customer.video(0).wait(10)
        await wait_for(lambda: customer.video(0).count > 30)
        assert (frame.width, frame.height) == (640, 360)  # the composite, upscaled
        assert room.passthrough.forwarded == 0


async def test_while_forwarding_the_customers_estimate_caps_the_agents_sender(monkeypatch):
    async with call("VP8") as (room, agent, _):
        await wait_for(lambda: room.passthrough.forwarded > 10)

        # From now on the customer's browser says it can take 300 kbps.
        def says_300_kbps(governor, bps, now):
            governor.last_estimate = 300_000.0
            return governor.running

        monkeypatch.setattr(RateGovernor, "estimate", says_300_kbps)
        sender = next(t.sender for t in room.peers["customer"].getTransceivers() if t.kind == "video")
        internals.encoder(sender).governor.last_estimate = 300_000.0
        camera_sender = next(t.sender for t in agent.pc.getTransceivers() if t.kind == "video")
        # The agent's (aiortc) sender takes the REMB the server passes on: at most 300 kbps.
        await wait_for(lambda: getattr(internals.encoder(camera_sender), "target_bitrate", None) == 300_000)
        # Back to the composite: the cap is lifted.
        room.set_layout("side_by_side")
        await wait_for(lambda: internals.encoder(camera_sender).target_bitrate > 300_000)
