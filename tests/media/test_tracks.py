"""Input slots, drains and synthetic sources."""

import asyncio

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.sources import ScreenTrack, TestCardTrack
from media.stamp import read_stamp
from media.tracks import FrameSlot, TrackDrain


def frame() -> av.VideoFrame:
    return av.VideoFrame(64, 48, "yuv420p")


class ScriptedTrack(MediaStreamTrack):
    """Hands out queued frames; ``None`` ends the track, an exception is raised as is."""

    kind = "video"

    def __init__(self):
        super().__init__()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.reads = 0

    async def recv(self):
        item = await self.queue.get()
        self.reads += 1
        if item is None:
            raise MediaStreamError
        if isinstance(item, Exception):
            raise item
        return item


async def test_slot_keeps_the_newest_and_counts_unread_frames_as_dropped():
    slot = FrameSlot("agent", clock=lambda: 7.0)
    assert slot.latest is None and not slot.present
    frames = [frame() for _ in range(4)]
    slot.put(frames[0])
    assert slot.latest.frame is frames[0] and slot.latest.version == 1 and slot.latest.arrived == 7.0
    slot.put(frames[1])  # frames[0] never read
    assert slot.dropped == 1
    slot.mark_read(slot.latest.version)
    slot.put(frames[2])  # frames[1] was read
    assert slot.dropped == 1
    slot.put(frames[3])
    assert (slot.dropped, slot.received, slot.version) == (2, 4, 4)
    assert slot.latest.frame is frames[3] and slot.present


async def test_ended_slot_freezes_or_hides():
    frozen, hidden = FrameSlot("a"), FrameSlot("b", hide_when_ended=True)
    for slot in (frozen, hidden):
        slot.put(frame())
        slot.end()
    assert frozen.present and frozen.latest is not None
    assert not hidden.present
    hidden.put(frame())  # a new frame brings it back
    assert hidden.present
    frozen.clear()
    assert not frozen.present


async def test_wait_newer_wakes_on_put_and_times_out_otherwise():
    slot = FrameSlot("agent")
    assert not await slot.wait_newer(0, timeout=0.01)
    waiter = asyncio.ensure_future(slot.wait_newer(0, timeout=5))
    await asyncio.sleep(0)
    slot.put(frame())
    assert await waiter
    assert await slot.wait_newer(0, timeout=0)  # already newer: no wait


async def test_drain_fills_slot_and_ends_input_on_media_stream_error():
    track, slot = ScriptedTrack(), FrameSlot("agent")
    drain = TrackDrain(track, slot, label="call-1 agent")
    frames = [frame() for _ in range(3)]
    for f in frames:
        track.queue.put_nowait(f)
    track.queue.put_nowait(None)
    for _ in range(100):
        if not drain.running:
            break
        await asyncio.sleep(0.001)
    assert not drain.running
    assert slot.received == 3 and slot.latest.frame is frames[-1]
    assert slot.ended and slot.present  # frozen on its last picture
    await drain.stop()
    await drain.stop()  # twice is fine


async def test_drain_survives_garbage_and_stops_cleanly(caplog):
    track, slot = ScriptedTrack(), FrameSlot("screen", hide_when_ended=True)
    drain = TrackDrain(track, slot)
    track.queue.put_nowait(frame())
    track.queue.put_nowait(ValueError("corrupt"))
    for _ in range(100):
        if not drain.running:
            break
        await asyncio.sleep(0.001)
    assert not drain.running and slot.ended and not slot.present
    assert "drain failed" in caplog.text

    idle = ScriptedTrack()
    drain = TrackDrain(idle, FrameSlot("agent"))
    await asyncio.sleep(0.01)
    assert drain.running
    await drain.stop()
    assert not drain.running
    assert all(t.get_name() != "drain agent" for t in asyncio.all_tasks())


async def test_drain_never_falls_behind_a_fast_track():
    """A burst of frames is absorbed: the slot holds the last, the rest are dropped, none queued."""
    track, slot = ScriptedTrack(), FrameSlot("agent")
    drain = TrackDrain(track, slot)
    burst = [frame() for _ in range(50)]
    for f in burst:
        track.queue.put_nowait(f)
    await asyncio.sleep(0.05)
    assert track.queue.empty() and slot.latest.frame is burst[-1]
    assert slot.dropped == 49
    await drain.stop()


@pytest.mark.parametrize("cls", [TestCardTrack, ScreenTrack])
async def test_synthetic_sources_produce_fresh_changing_stamped_frames(cls):
    track = cls(640, 360, fps=30, paced=False, stamp=True)
    frames = [await track.recv() for _ in range(6)]
    assert all(f.format.name == "yuv420p" and (f.width, f.height) == (640, 360) for f in frames)
    assert len({id(f) for f in frames}) == 6
    assert [f.pts for f in frames] == [round(i / 30 * 90000) for i in range(6)]
    assert [read_stamp(f).frame_id for f in frames] == list(range(6))
    # The picture moves (below the stamp strip).
    a, b = (f.to_ndarray()[40:] for f in (frames[0], frames[5]))
    assert not np.array_equal(a, b)
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_paced_source_waits_for_its_clock():
    track = ScreenTrack(640, 360, fps=20)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(3):
        await track.recv()
    # Frames 0, 1, 2 are due at 0, 50 and 100 ms: the third cannot come early.
    assert loop.time() - start >= 0.095


def test_odd_sizes_are_rejected():
    with pytest.raises(ValueError):
        TestCardTrack(641, 360)


async def test_several_consumers_wake_on_the_same_frame():
    slot = FrameSlot("agent")
    waiters = [asyncio.ensure_future(slot.wait_newer(0, timeout=5)) for _ in range(3)]
    await asyncio.sleep(0)
    slot.put(frame())
    assert await asyncio.gather(*waiters) == [True, True, True]
