"""What the customer sees is encoded once, for the customer and the agent's preview alike."""

from __future__ import annotations

import pytest

from media import aiortc_internals as internals
from media.peers import FastH264Encoder, SafeVp8Encoder
from media.program import Program
from media.room import Room
from media.sources import TestCardTrack
from media.stamp import read_stamp
from tests.media.test_passthrough import call as passthrough_call
from tests.media.test_room import wait_for


@pytest.fixture
def encodes(monkeypatch):
    """Every real encode in the process, by the encoder object that made it."""
    calls: dict[int, int] = {}
    for cls in (SafeVp8Encoder, FastH264Encoder):
        original = cls.encode

        def counting(self, frame, force_keyframe=False, original=original):
            calls[id(self)] = calls.get(id(self), 0) + 1
            return original(self, frame, force_keyframe)

        monkeypatch.setattr(cls, "encode", counting)
    return calls


def call(codec: str, *, agent_codec: str | None = None, layout: str = "side_by_side"):
    """A 360p room in ``layout`` (side by side: always composed) with an aiortc agent (a 360p
    stamped camera) and customer, connected."""
    return passthrough_call(codec, stamp=True, layout=layout, agent_codec=agent_codec)


def senders_encoders(room: Room) -> list[object]:
    return [
        internals.encoder(t.sender)
        for pc in room.peers.values()
        for t in pc.getTransceivers()
        if t.kind == "video" and internals.encoder(t.sender) is not None
    ]


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_the_composite_is_encoded_once_for_the_customer_and_the_preview(codec, encodes):
    async with call(codec) as (room, agent, customer):
        await wait_for(lambda: customer.video(0).count > 30 and agent.video(0).count > 30)
        program = room.program
        encoders = {id(e) for e in program.encoders.values()}
        assert list(program.encoders) == [codec]
        composed = room.compositor.frames
        # Every composed frame was encoded once: by the program's one encoder, for both viewers
        # (the test agent's camera is encoded by aiortc's stock encoders, not counted here).
        assert set(encodes) == encoders
        assert sum(encodes[e] for e in encoders) in range(composed - 2, composed + 1)
        # The viewers' senders only packetise the program's frames: none of them encoded one.
        assert not {id(e) for e in senders_encoders(room)} & set(encodes)
        # Both see the same pictures, the agent's stamps and all.
        assert read_stamp(await customer.video(0).next_frame()) is not None
        assert read_stamp(await agent.video(0).next_frame()) is not None
        assert customer.video(0).darkest_mean > 40 and agent.video(0).darkest_mean > 40


async def test_a_viewer_with_another_codec_gets_its_own_encode_of_the_same_frames(encodes):
    async with call("H264", agent_codec="VP8") as (room, agent, customer):
        assert (customer.codec(0), agent.codec(0)) == ("H264", "VP8")
        await wait_for(lambda: customer.video(0).count > 20 and agent.video(0).count > 20)
        assert sorted(room.program.encoders) == ["H264", "VP8"]
        assert read_stamp(await agent.video(0).next_frame()) is not None
        # No forwarding of the camera to one viewer and not the other, even at the composite's size.
        assert not room.passthrough_active


async def test_in_passthrough_nothing_is_composed_or_encoded_and_the_preview_is_held():
    async with call("VP8", layout="agent") as (room, agent, customer):
        await wait_for(lambda: room.passthrough.forwarded > 20)
        composed, encoded = room.compositor.frames, room.program.encodes
        shown = customer.video(0).count, agent.video(0).count
        await wait_for(lambda: room.passthrough.forwarded > 50 and customer.video(0).count > shown[0] + 20)
        assert room.compositor.frames - composed <= 1 and room.program.encodes - encoded <= 1
        assert read_stamp(await customer.video(0).next_frame()) is not None
        # The agent's browser shows its own camera meanwhile (media.program: mirror viewers).
        assert room.program.mirrors_held and agent.video(0).count <= shown[1] + 1
        # ... nor is the camera decoded, bar its keyframes (for its size): nothing draws it.
        camera = next(t.receiver for t in room.peers["agent"].getTransceivers() if t.kind == "video")
        buffer = internals.jitter_buffer(camera)
        decoded, keyframes = buffer.to_decoder, buffer.keyframes_decoded
        forwarded = room.passthrough.forwarded
        await wait_for(lambda: room.passthrough.forwarded > forwarded + 20)
        assert buffer.to_decoder - decoded == buffer.keyframes_decoded - keyframes <= 2
        # A layout change: the composite comes back for both, on a keyframe (no black frame).
        room.set_layout("side_by_side")
        await wait_for(lambda: not room.passthrough_active)
        shown = customer.video(0).count, agent.video(0).count
        await wait_for(
            lambda: customer.video(0).count > shown[0] + 15 and agent.video(0).count > shown[1] + 15
        )
        assert room.program.encodes > encoded + 10
        assert buffer.to_decoder > decoded + 10  # decoded again, from a keyframe (asked for)
        assert customer.video(0).darkest_mean > 40 and agent.video(0).darkest_mean > 40


async def test_a_keyframe_request_from_either_viewer_reaches_the_one_encoder(monkeypatch):
    async with call("VP8") as (room, agent, customer):
        await wait_for(lambda: customer.video(0).count > 10)
        encoder = room.program.encoders["VP8"]
        forced: list[bool] = []
        encode = encoder.encode

        def noting(frame, force_keyframe=False):
            forced.append(force_keyframe)
            return encode(frame, force_keyframe)

        monkeypatch.setattr(encoder, "encode", noting)
        for role in ("agent", "customer"):
            await wait_for(lambda: len(forced) > 5)
            forced.clear()
            sender = next(t.sender for t in room.peers[role].getTransceivers() if t.kind == "video")
            internals.force_keyframe(sender)  # what that browser's PLI does
            await wait_for(lambda: any(forced))  # the one encoder made a keyframe for both
            forced.clear()


async def test_a_frame_that_fails_to_encode_does_not_end_the_picture(monkeypatch):
    async with call("VP8") as (room, _, customer):
        await wait_for(lambda: customer.video(0).count > 10)
        encoder = room.program.encoders["VP8"]
        failed: list[int] = []
        encode = encoder.encode

        def fails_once(frame, force_keyframe=False):
            if not failed:
                failed.append(1)
                raise ValueError("a frame the encoder cannot take")
            return encode(frame, force_keyframe)

        monkeypatch.setattr(encoder, "encode", fails_once)
        shown = customer.video(0).count
        await wait_for(lambda: failed and customer.video(0).count > shown + 20)
        assert customer.video(0).darkest_mean > 40


async def test_the_steering_viewer_is_offered_each_frame_before_the_others():
    program = Program(TestCardTrack(320, 240), label="order")
    order: list[str] = []
    tracks = []
    # Previews first (a set's order would put the customer anywhere among them), the customer last.
    for name, steers in [(f"preview {n}", False) for n in range(8)] + [("customer", True)]:
        track = program.viewer(None, "VP8", steers=steers)
        offer = track.offer

        def recorded(packet, name=name, offer=offer):
            order.append(name)
            return offer(packet)

        track.offer = recorded  # type: ignore[method-assign]
        tracks.append(track)
    try:
        await wait_for(lambda: len(order) >= 9 * 3)
        frames = [order[i : i + 9] for i in range(0, 9 * 3, 9)]
        assert all(frame[0] == "customer" for frame in frames)
    finally:
        await program.close()
