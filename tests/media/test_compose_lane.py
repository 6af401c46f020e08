"""The primary's fresh frame composed (and encoded) on its decoder's thread: media.compose_lane,
CompositorTrack.recv_through, and a real room call whose composites are encoded there."""

from __future__ import annotations

import asyncio
import queue
import threading
import time

import aiortc.rtcrtpreceiver
import numpy as np
import pytest

from media import aiortc_internals as internals
from media.browser import BrowserPeer
from media.compose_lane import ComposeLane
from media.compositor import CompositorTrack
from media.layout import AGENT, SCREEN, SIZES, compute_layout
from media.planes import frame_planes
from media.room import Room
from media.sources import ScreenTrack, TestCardTrack
from tests.media.test_decoding import VP8, encoded_frames
from tests.media.test_room import chroma_v, wait_for


async def _card(tint=(200, 0, 0)):
    return await TestCardTrack(640, 360, paced=False, label="", tint=tint).recv()


def _offer_from_a_thread(lane: ComposeLane, frame) -> tuple[bool, int]:
    """``frame`` offered on a thread of its own, as a decoder's: (taken, that thread's id)."""
    out = {}

    def decoder() -> None:
        out["taken"], out["thread"] = lane.offer(frame), threading.get_ident()

    thread = threading.Thread(target=decoder, name="video-decoder")
    thread.start()
    thread.join()
    return out["taken"], out["thread"]


def test_a_lane_takes_a_frame_only_while_armed_and_once():
    lane = ComposeLane(AGENT)
    ran = []
    assert lane.offer("frame") is False  # not armed: the frame goes the usual way
    lane.arm(ran.append)
    assert lane.offer("one") is True
    assert lane.offer("two") is False  # armed for one frame
    assert ran == ["one"] and lane.taken == 1
    lane.arm(ran.append)
    assert lane.disarm() is True  # not taken: the work will not run
    assert lane.offer("three") is False and ran == ["one"]
    lane.arm(ran.append)
    asyncio.run(lane.close())
    assert lane.offer("four") is False and ran == ["one"]  # closed: nothing taken again


async def test_the_primarys_frame_is_composed_and_worked_on_the_thread_that_offers_it():
    compositor = CompositorTrack(size="360p", layout="agent", agent_name="A", fps=30)
    lane = compositor.lanes[AGENT] = ComposeLane(AGENT)  # what attach() installs for a receiver's track
    compositor.slot(AGENT).put(await _card(tint=(0, 0, 200)))
    await compositor.recv()  # the first picture, composed here
    worked_on = []

    def work(composite):
        worked_on.append(threading.get_ident())
        return "encoded"

    red = await _card()
    waiting = asyncio.ensure_future(compositor.recv_through(work))
    await asyncio.sleep(0.01)  # the pump waits for the primary's next frame: the lane is armed
    taken, decoder = await asyncio.to_thread(_offer_from_a_thread, lane, red)
    assert taken
    composite, result = await waiting
    assert result == "encoded" and worked_on == [decoder] != [threading.get_ident()]
    assert compositor.slot(AGENT).latest.frame is red  # in the slot, for the frames after it
    full = compute_layout(SIZES["360p"], "agent", {AGENT})[0].content
    assert chroma_v(composite, full) > 170  # the red card, not the blue one before
    assert compositor.frames == 2 and compositor.clock_frames == 0
    # Nothing new: the next composite is the fallback clock's, made here, the frame not composed again.
    composite, result = await compositor.recv_through(work)
    assert result is None and compositor.clock_frames == 1 and worked_on == [decoder]
    assert lane.offer(red) is False  # nothing armed after a wait that timed out
    await compositor.close()


async def test_a_frame_that_comes_the_usual_way_while_armed_is_composed_here():
    compositor = CompositorTrack(size="360p", layout="agent", agent_name="A", fps=30)
    lane = compositor.lanes[AGENT] = ComposeLane(AGENT)
    compositor.slot(AGENT).put(await _card())
    await compositor.recv()
    waiting = asyncio.ensure_future(compositor.recv_through(lambda composite: "encoded"))
    await asyncio.sleep(0.01)
    compositor.slot(AGENT).put(await _card())  # the track's queue and drain, on the loop
    composite, result = await waiting
    assert result is None and compositor.clock_frames == 0  # fresh, composed here; work not run
    assert lane.offer(await _card()) is False  # and the lane was disarmed
    await compositor.close()


async def test_work_that_fails_on_the_decoders_thread_raises_to_the_waiter():
    compositor = CompositorTrack(size="360p", layout="agent", agent_name="A", fps=30)
    lane = compositor.lanes[AGENT] = ComposeLane(AGENT)
    compositor.slot(AGENT).put(await _card())
    await compositor.recv()

    def work(composite):
        raise RuntimeError("an encoder error")

    waiting = asyncio.ensure_future(compositor.recv_through(work))
    await asyncio.sleep(0.01)
    taken, _ = await asyncio.to_thread(_offer_from_a_thread, lane, await _card())
    assert taken  # the decoder thread itself is unharmed (offer returned)
    with pytest.raises(RuntimeError, match="an encoder error"):
        await waiting
    await compositor.close()


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_a_calls_composites_are_encoded_on_the_agent_cameras_decoder_thread(codec):
    """The customer's picture, composed every frame (no passthrough): the camera's fresh frames are
    composed and encoded on its receiver's decoder thread, and a layout change on the loop
    meanwhile never renegotiates nor shows a black frame."""
    room = Room(label="lane", agent_name="Ada Lovelace", size="360p", fps=30, codec=codec)
    room.passthrough.eligible = lambda: False  # compose and encode every frame
    threads = set()
    camera = TestCardTrack(640, 360, fps=30, label="", tint=(200, 0, 0))
    agent = BrowserPeer.agent(camera=camera, screen=ScreenTrack(640, 360, fps=5))
    customer = BrowserPeer.customer()
    try:
        async with agent, customer:
            await agent.negotiate(room.answer)
            await customer.negotiate(room.answer)
            await customer.video(0).wait(10)
            encoder = room.program.encoders[codec]
            encode = encoder.encode

            def watched(frame, force=False):
                threads.add(threading.current_thread().name)
                return encode(frame, force)

            encoder.encode = watched
            await wait_for(lambda: room.program.lane_encodes >= 20)
            assert room.compositor.lanes[AGENT].taken >= 20
            assert "video-decoder" in threads  # aiortc's decoder thread's name
            before = customer.transceiver_count()
            seen = customer.video(0).count
            await room.screen_shared(True)  # the layout changes while frames are made there
            tiles = {t.name: t.content for t in compute_layout(SIZES["360p"], "screen", {AGENT, SCREEN})}
            await wait_for(lambda: chroma_v(customer.video(0).latest, tiles[AGENT]) > 170)
            await room.screen_shared(False)
            full = compute_layout(SIZES["360p"], "agent", {AGENT})[0].content
            await wait_for(
                lambda: customer.video(0).count > seen + 30 and chroma_v(customer.video(0).latest, full) > 170
            )
            assert customer.transceiver_count() == before
            assert customer.video(0).darkest_mean > 40
            assert float(np.mean(frame_planes(customer.video(0).latest)[0])) > 40
    finally:
        await room.close()


async def test_a_detached_inputs_lane_takes_nothing_more_and_its_waiter_goes_on():
    compositor = CompositorTrack(size="360p", layout="agent", agent_name="A", fps=30)
    lane = compositor.lanes[AGENT] = ComposeLane(AGENT)
    compositor.slot(AGENT).put(await _card())
    await compositor.recv()
    waiting = asyncio.ensure_future(compositor.recv_through(lambda composite: "encoded"))
    await asyncio.sleep(0.01)
    await compositor.detach(AGENT)  # the camera released: the placeholder, nothing of it after
    assert AGENT not in compositor.lanes
    taken, _ = await asyncio.to_thread(_offer_from_a_thread, lane, await _card())
    assert not taken  # a frame its decoder still had goes nowhere near the slot
    composite, result = await asyncio.wait_for(waiting, 2)  # the clock's frame: the placeholder
    assert result is None and compositor.slot(AGENT).latest is None
    await compositor.close()


async def test_a_decoder_that_is_behind_hands_its_frames_back_and_offers_only_when_it_caught_up():
    """Composing and encoding on the decoder's thread must not make the decoder fall further behind:
    with frames waiting to be decoded, each goes back to the loop (the slot keeps the newest)."""
    frames = await encoded_frames(4)
    loop = asyncio.get_running_loop()
    inputs: queue.Queue = queue.Queue()
    outputs: asyncio.Queue = asyncio.Queue()
    for frame in frames:  # all four wait before the decoder starts: it is three behind
        inputs.put((VP8, frame))
    taken = []
    assert internals.take_decoded(_Track(outputs), lambda frame: taken.append(frame.pts) is None)
    worker = threading.Thread(
        target=aiortc.rtcrtpreceiver.decoder_worker, args=(loop, inputs, outputs, threading.Event())
    )
    worker.start()
    back = [(await asyncio.wait_for(outputs.get(), 10)).pts for _ in range(3)]
    await asyncio.to_thread(lambda: [time.sleep(0.01) for _ in range(500) if not taken])
    inputs.put(None)
    assert await asyncio.wait_for(outputs.get(), 10) is None  # the end, after the taken frame
    worker.join(5)
    assert back == [f.timestamp for f in frames[:3]]  # behind: handed back, in order
    assert taken == [frames[3].timestamp]  # caught up: offered, and taken


class _Track:
    """A receiver's track as aiortc makes it, for take_decoded: its decoder's output queue."""

    def __init__(self, queue: asyncio.Queue) -> None:
        self._queue = queue
