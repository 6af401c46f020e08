"""The on-demand relay: one reader of a source, running only while a subscriber is live."""

import asyncio
import gc
import weakref

import pytest
from aiortc.mediastreams import MediaStreamError

from media.relay import OnDemandRelay
from media.sources import TestCardTrack


def card() -> TestCardTrack:
    return TestCardTrack(64, 48, fps=50)


async def reads_stay(source: TestCardTrack, span: float = 0.3) -> bool:
    """Whether ``source``'s frame counter stays put for ``span`` seconds (a few frame times)."""
    before = source.frames
    await asyncio.sleep(span)
    return source.frames == before


def relay_tasks() -> set[asyncio.Task]:
    return {t for t in asyncio.all_tasks() if t.get_name().endswith(" reader")}


async def test_the_source_is_read_only_while_a_subscriber_is_live():
    source = card()
    relay = OnDemandRelay(source, label="t")
    track = relay.subscribe()
    assert await reads_stay(source)  # subscribed but asking nothing: not read
    assert not relay.reading
    for _ in range(5):
        frame = await asyncio.wait_for(track.recv(), 5)
        assert (frame.width, frame.height) == (64, 48)
    assert relay.reading and source.frames >= 5
    track.stop()
    await relay.close()
    assert not relay.reading and not relay_tasks()
    assert await reads_stay(source)
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_reading_stops_with_the_last_subscriber_and_restarts_for_a_new_one():
    source = card()
    relay = OnDemandRelay(source, label="t")
    first = relay.subscribe()
    await asyncio.wait_for(first.recv(), 5)
    first.stop()
    # Stopping is synchronous; the cancelled reader finishes on the next loop turns (a loaded
    # machine may take a while: look for up to 5 s).
    for _ in range(500):
        if not relay.reading and not relay_tasks():
            break
        await asyncio.sleep(0.01)
    assert not relay.reading and not relay_tasks()
    assert await reads_stay(source)
    second = relay.subscribe()
    for _ in range(3):
        await asyncio.wait_for(second.recv(), 5)
    assert relay.reading
    second.stop()
    await relay.close()
    assert not relay_tasks()
    assert await reads_stay(source)


async def test_two_subscribers_both_get_frames_and_one_stopping_leaves_the_other_reading():
    source = card()
    relay = OnDemandRelay(source, label="t")
    one, other = relay.subscribe(), relay.subscribe()

    async def read(track, count):
        return [await track.recv() for _ in range(count)]

    got_one, got_other = await asyncio.wait_for(asyncio.gather(read(one, 10), read(other, 10)), 10)
    assert len(got_one) == len(got_other) == 10
    assert {f.pts for f in got_one} & {f.pts for f in got_other}  # the same frames, shared
    one.stop()
    assert relay.subscribers == 1
    before = source.frames
    await asyncio.wait_for(read(other, 5), 5)
    assert relay.reading and source.frames > before
    other.stop()
    await relay.close()
    assert not relay_tasks()


async def test_a_stalled_subscriber_does_not_stall_the_other():
    source = card()
    relay = OnDemandRelay(source, label="t")
    stalled, reading = relay.subscribe(), relay.subscribe()
    await asyncio.wait_for(stalled.recv(), 5)  # then never again
    frames = [await asyncio.wait_for(reading.recv(), 5) for _ in range(20)]
    assert len({f.pts for f in frames}) == 20
    assert stalled.skipped >= 15  # its slot kept only the newest frame
    # Its one kept frame is the newest, not the first it missed.
    newest = (await stalled.recv()).pts
    assert newest >= frames[-2].pts
    stalled.stop()
    reading.stop()
    await relay.close()
    assert not relay_tasks()


async def test_a_waiting_recv_ends_when_its_track_stops_and_close_ends_every_subscriber():
    source = card()
    relay = OnDemandRelay(source, label="t")
    waiting, other = relay.subscribe(), relay.subscribe()
    await asyncio.wait_for(other.recv(), 5)
    await asyncio.wait_for(waiting.recv(), 5)  # its slot is empty now, until the next frame
    pending = asyncio.ensure_future(waiting.recv())
    await asyncio.sleep(0)
    assert not pending.done()
    waiting.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(pending, 5)
    await relay.close()
    assert other.readyState == "ended" and not relay_tasks()
    assert relay.subscribe().readyState == "ended"  # a closed relay hands out ended tracks
    assert await reads_stay(source)


async def test_an_ended_source_ends_its_subscribers():
    source = card()
    relay = OnDemandRelay(source, label="t")
    track = relay.subscribe()
    await asyncio.wait_for(track.recv(), 5)
    source.stop()
    with pytest.raises(MediaStreamError):
        for _ in range(5):  # at most a frame already handed out, then the end
            await asyncio.wait_for(track.recv(), 5)
    assert track.readyState == "ended"
    assert relay.subscribe().readyState == "ended"
    await relay.close()
    assert not relay_tasks()


async def test_a_subscriber_that_stops_asking_without_stopping_parks_the_reader():
    source = card()
    relay = OnDemandRelay(source, label="t", idle_s=0.2)
    track = relay.subscribe()
    for _ in range(3):
        await asyncio.wait_for(track.recv(), 5)
    # Its consumer went away without stopping the track (a compositor's drain does so).
    for _ in range(100):
        if not relay.reading:
            break
        await asyncio.sleep(0.05)
    assert not relay.reading and track.readyState == "live" and not track.active
    assert await reads_stay(source)
    for _ in range(3):  # it asks again: reading resumes
        await asyncio.wait_for(track.recv(), 5)
    assert relay.reading
    track.stop()
    await relay.close()
    assert not relay_tasks()


async def test_a_track_its_consumer_dropped_is_not_kept():
    source = card()
    relay = OnDemandRelay(source, label="t", idle_s=0.2)
    track = relay.subscribe()
    await asyncio.wait_for(track.recv(), 5)
    assert track.active
    gone = weakref.ref(track)
    del track
    gc.collect()
    assert gone() is None and relay.subscribers == 0
    for _ in range(100):  # nobody asks: the reader parks by itself
        if not relay.reading:
            break
        await asyncio.sleep(0.05)
    assert not relay.reading
    await relay.close()
    assert not relay_tasks()
