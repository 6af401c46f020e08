"""The agent's own frames go to the customer while the composite would be exactly them."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiortc import RTCRtpSender

from media import aiortc_internals as internals
from media.bitrate import RateGovernor
from media.browser import BrowserPeer, ToneTrack
from media.capture_clock import CompositeTimes
from media.encoded import UNCAPPED_BPS, is_keyframe
from media.passthrough import CameraPassthrough
from media.receipt import LatencyReceipt
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


def only_codec(peer: BrowserPeer, name: str) -> None:
    """Make ``peer`` offer video codec ``name`` alone (a browser that lacks the other)."""
    codecs = [
        c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.upper() == f"VIDEO/{name}"
    ]
    for transceiver in peer.pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(codecs)


@contextlib.asynccontextmanager
async def call(
    codec: str = "VP8",
    camera_size: tuple[int, int] = (640, 360),
    stamp: bool = False,
    *,
    layout: str = "agent",
    agent_codec: str | None = None,
):
    """A 360p room in ``layout`` with an aiortc agent (its camera at ``camera_size``; offering
    ``agent_codec`` alone if given) and customer, connected."""
    room = Room(label="passthrough", size="360p", codec=codec)
    room.set_layout(layout)
    camera = TestCardTrack(*camera_size, fps=30, stamp=stamp, label="")
    agent = BrowserPeer.agent(camera=camera, mic=ToneTrack(440))
    if agent_codec is not None:
        only_codec(agent, agent_codec)
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


async def test_forwarded_frames_keep_the_spacing_the_agents_browser_stamped():
    # Stamped as they left the server, frames that waited together for a busy sender went out
    # a few ms apart, and the customer's Chromium showed them as bunched as that.
    async with call("H264") as (room, _, customer):
        await wait_for(lambda: room.passthrough.forwarded > 10)
        video = next(t.receiver for t in customer.pc.getTransceivers() if t.kind == "video")
        stamps: list[int] = []
        undo = internals.tap_received_rtp(video, lambda p: p.marker and stamps.append(p.timestamp))
        forwarded = room.passthrough.forwarded
        await wait_for(lambda: room.passthrough.forwarded > forwarded + 45)
        undo()
    spacings = [(later - earlier) % (1 << 32) for earlier, later in zip(stamps, stamps[1:], strict=False)]
    # 30 fps at 90 kHz (6000: a frame skipped); a stall past 0.2 s may start the timeline again.
    as_stamped = [s for s in spacings if s % 3000 == 0]
    assert len(as_stamped) >= 0.9 * len(spacings), sorted(spacings)


async def test_a_smaller_camera_is_forwarded_at_its_own_size_and_a_larger_one_composited():
    # Smaller (a browser's camera still ramping up): the customer sees it as a direct call would.
    async with call("H264", camera_size=(320, 180)) as (room, _, customer):
        await wait_for(lambda: room.passthrough.forwarded > 10)
        frame = await customer.video(0).next_frame()
        assert (frame.width, frame.height) == (320, 180)
    # Larger than the composite: scaled down to the size the centre set, never sent bigger.
    async with call("H264", camera_size=(1280, 720)) as (room, _, customer):
        await wait_for(lambda: customer.video(0).count > 30)
        frame = await customer.video(0).next_frame()
        assert (frame.width, frame.height) == (640, 360)
        assert room.passthrough.forwarded == 0


def customer_says(monkeypatch, room: Room, bps: float) -> None:
    """From now on the customer's browser says (REMB) it can take ``bps``."""

    def says(governor, _bps, _now):
        governor.last_estimate = bps
        return governor.running

    monkeypatch.setattr(RateGovernor, "estimate", says)
    sender = next(t.sender for t in room.peers["customer"].getTransceivers() if t.kind == "video")
    encoder = internals.encoder(sender)
    if encoder is not None:  # none before the sender's first frame: the next REMB says it
        encoder.governor.last_estimate = bps


def caps_sent(monkeypatch) -> list[float]:
    """The caps the server sends the agent's browser (REMB), as they go."""
    sent: list[float] = []
    original = CameraPassthrough.cap_upstream

    async def recording(self, bps):
        sent.append(bps)
        await original(self, bps)

    monkeypatch.setattr(CameraPassthrough, "cap_upstream", recording)
    return sent


async def test_while_forwarding_a_customer_who_cannot_take_the_camera_caps_the_agents_sender(monkeypatch):
    async with call("VP8") as (room, agent, customer):
        await wait_for(lambda: room.passthrough.forwarded > 10)
        caps = caps_sent(monkeypatch)
        customer_says(monkeypatch, room, 100_000.0)  # less than any camera sends
        # ... and its link loses a third of the packets (its receiver reports say so).
        video = next(t.receiver for t in customer.pc.getTransceivers() if t.kind == "video")
        arrived = iter(range(1_000_000))
        internals.drop_received_rtp(video, lambda _packet: next(arrived) % 3 == 0)
        camera_sender = next(t.sender for t in agent.pc.getTransceivers() if t.kind == "video")
        await wait_for(lambda: 100_000.0 in caps)
        # The agent's (aiortc) sender takes the REMB the server passes on: down to its floor.
        await wait_for(lambda: internals.encoder(camera_sender).target_bitrate <= 250_000)
        # ... and stays there: the server's receiver of the camera sends REMB of its own (its
        # estimate of the agent's link), which the sender took over the cap within a second.
        highest = 0
        forwarded = room.passthrough.forwarded
        while room.passthrough.forwarded < forwarded + 120:  # 4 s: past the sender's pause before a rise
            highest = max(highest, internals.encoder(camera_sender).target_bitrate)
            await asyncio.sleep(0.02)
        assert highest <= 250_000, (highest, caps, room.passthrough.switches)
        # Back to the composite: the cap is lifted.
        room.set_layout("side_by_side")
        await wait_for(lambda: caps[-1] == UNCAPPED_BPS)


async def test_a_low_estimate_without_loss_does_not_hold_the_camera_back(monkeypatch):
    # A receive-side estimate follows what it is sent: as a cap, it held a Chromium agent's
    # camera at its starting rate, then walked it down to 240 kbps.
    async with call("VP8") as (room, _, _customer):
        await wait_for(lambda: room.passthrough.forwarded > 10)
        caps = caps_sent(monkeypatch)
        customer_says(monkeypatch, room, 100_000.0)
        forwarded = room.passthrough.forwarded
        await wait_for(lambda: room.passthrough.forwarded > forwarded + 90)  # 3 s of reports
        assert caps == []


async def test_a_customer_who_takes_what_the_camera_sends_does_not_hold_it_back(monkeypatch):
    # An estimate can only follow what it is sent: capping the camera at it would keep the
    # camera at its starting rate for good (an agent's upload stuck at ~150 kbps in Chromium).
    async with call("VP8") as (room, _, _customer):
        await wait_for(lambda: room.passthrough.forwarded > 10)
        caps = caps_sent(monkeypatch)
        customer_says(monkeypatch, room, 5_000_000.0)
        forwarded = room.passthrough.forwarded
        await wait_for(lambda: room.passthrough.forwarded > forwarded + 60)
        assert caps == []


class GrowingCamera(TestCardTrack):
    """A test card that the agent's browser starts sending at 1280x720 when told (its encoder
    then starts again on a keyframe, as a browser's does on a resolution change)."""

    grown = False

    async def recv(self):
        frame = await super().recv()
        if not self.grown:
            return frame
        big = frame.reformat(width=1280, height=720)
        big.pts, big.time_base = frame.pts, frame.time_base
        return big


async def test_a_forwarded_camera_that_grows_past_the_composite_goes_back_to_the_composite():
    room = Room(label="growing", size="360p", codec="VP8")
    camera = GrowingCamera(640, 360, fps=30, label="")
    agent = BrowserPeer.agent(camera=camera, mic=ToneTrack(440))
    customer = BrowserPeer.customer()
    try:
        async with agent, customer:
            await agent.negotiate(room.answer)
            await customer.negotiate(room.answer)
            await wait_for(lambda: room.passthrough.forwarded > 20)
            camera.grown = True  # decoding is paused: only its keyframe tells the size
            await wait_for(lambda: not room.passthrough_active)
            shown = customer.video(0).count
            await wait_for(lambda: customer.video(0).count > shown + 10)
            frame = await customer.video(0).next_frame()
            assert (frame.width, frame.height) == (640, 360)  # the composite, never 720p
            assert customer.video(0).darkest_mean > 40
    finally:
        await room.close()


async def test_a_burst_of_held_camera_frames_reaches_the_customer_without_a_keyframe_wait():
    # A repaired loss releases every frame held behind it at once (up to the jitter buffer's gap
    # timeout, ~11 at 30 fps). Queues sized for a sender that fell behind overflowed on them and
    # the picture froze until a keyframe came (a round trip and a keyframe more).
    async with call("VP8") as (room, _, _customer):
        await wait_for(lambda: room.passthrough.forwarded > 10)
        buffer = room.passthrough._buffer()
        deliver = buffer.on_frame
        held = []

        def hold_then_release(frame):
            held.append(frame)
            if len(held) == 8:  # what ~0.27 s behind a lost packet releases
                for frame in held:
                    deliver(frame)

        viewers = list(room.program._viewers)
        skipped = [v.queue.skipped for v in viewers], room.passthrough._queue.skipped
        buffer.on_frame = hold_then_release
        await wait_for(lambda: len(held) >= 8)
        buffer.on_frame = deliver
        forwarded = room.passthrough.forwarded
        await wait_for(lambda: room.passthrough.forwarded >= forwarded + 8)
        assert ([v.queue.skipped for v in viewers], room.passthrough._queue.skipped) == skipped


def test_the_forwarded_timeline_follows_the_cameras_stamps_and_is_anchored_again_when_it_strays():
    passthrough = CameraPassthrough(lambda: True, CompositeTimes(LatencyReceipt()))
    step = 3000  # 30 fps at 90 kHz
    first = passthrough._pts(0xFFFF_F000, now=100.0)  # the camera's clock about to wrap
    assert first == 100 * 90_000
    # Spaced as the camera stamped, across its 32-bit wrap, whenever the frames arrive.
    assert passthrough._pts((0xFFFF_F000 + step) % (1 << 32), now=100.050) == first + step
    assert passthrough._pts((0xFFFF_F000 + 2 * step) % (1 << 32), now=100.051) == first + 2 * step
    # A stall longer than REANCHOR_S: anchored again at the arrival, forward.
    later = passthrough._pts(5 * step, now=101.0)
    assert later == 101 * 90_000
    # Far behind its arrival after that (a new source's stamps): never back, never one tick.
    ahead = passthrough._pts(6 * step, now=100.5)
    assert later < ahead and ahead - later == step // 2


async def test_the_agents_preview_is_held_while_it_is_their_own_camera_and_resumes_on_a_keyframe():
    # Sent back, the preview would only make the agent's browser decode its own camera again.
    async with call("H264") as (room, agent, customer):
        told: list[bool] = []
        room.on_preview = told.append
        await wait_for(lambda: room.passthrough.forwarded > 10 and room.program.mirrors_held)
        preview = agent.video(0)
        held_at, forwarded = preview.count, room.passthrough.forwarded
        await wait_for(lambda: room.passthrough.forwarded > forwarded + 20)
        assert preview.count <= held_at + 1  # at most a frame already on its way
        assert customer.video(0).count > 0
        # The composite again: the preview resumes, from a keyframe (it decodes), and the owner is told.
        room.set_layout("side_by_side")
        await wait_for(lambda: told[-1:] == [False])  # (True came first unless it came before we listened)
        await wait_for(lambda: preview.count > held_at + 15)
        assert preview.darkest_mean > 40  # never a black frame on the way
        # A preview that arrives while the camera is forwarded (a reloaded console) is told at once.
        room.set_layout("agent")
        await wait_for(lambda: told[-2:] == [False, True])
        heard = len(told)
        room.program.viewer(None, "H264", steers=False, mirror=True)
        assert told[heard:] == [True]
