"""Output buffers painted in place (media.frame_pool): whatever buffer a frame lands in, it shows
exactly what a compositor painting from scratch would, however little was repainted."""

import random

import av
import numpy as np

from media.compositor import CompositorTrack
from media.frame_pool import FramePool
from media.layout import AGENT, AVATAR, SCREEN, Rect
from media.planes import frame_planes
from media.stamp import Stamp, read_stamp, write_stamp

W, H = 64, 32


def _split(buffer: np.ndarray):
    flat = buffer.reshape(-1)
    return (
        flat[: W * H].reshape(H, W),
        flat[W * H : W * H * 5 // 4].reshape(H // 2, W // 2),
        flat[W * H * 5 // 4 :].reshape(H // 2, W // 2),
    )


def _flat(value: int, stamp: int | None = None) -> av.VideoFrame:
    frame = av.VideoFrame(1280, 720, "yuv420p")
    for index, plane in enumerate(frame_planes(frame)):
        plane[:] = value if index == 0 else 128
    if stamp is not None:
        write_stamp(frame, Stamp(stamp, stamp))
    return frame


def _pixels(frame: av.VideoFrame) -> np.ndarray:
    return np.concatenate([p.reshape(-1) for p in frame_planes(frame)])


def test_frames_match_a_fresh_compositor_while_some_are_held_stamped_and_faded():
    rng = random.Random(5)
    ours = CompositorTrack(size="720p", layout="screen", agent_name="Agent", fade_ms=0)
    held: list[av.VideoFrame] = []
    for step in range(120):
        stamp = rng.randrange(1, 1000) if rng.random() < 0.5 else None
        inputs = {AGENT: _flat(rng.randrange(40, 220), stamp), AVATAR: _flat(rng.randrange(40, 220))}
        if step % 6 == 0:
            inputs[SCREEN] = _flat(rng.randrange(40, 220))
        if step % 40 == 39:
            ours.set_layout("side_by_side" if ours.layout == "screen" else "screen")
        for name, frame in inputs.items():
            ours.slot(name).put(frame)
        out = ours.compose()
        # A compositor with no history paints the same slots from scratch.
        fresh = CompositorTrack(size="720p", layout=ours.layout, agent_name="Agent", fade_ms=0)
        for name, slot in ours.slots.items():
            fresh.slot(name).put(slot.latest.frame)
        assert np.array_equal(_pixels(out), _pixels(fresh.compose())), step
        assert (read_stamp(out) is not None) == (stamp is not None), step  # a stamp never lingers
        held.append(out)  # frames in flight for a while (an encoder's queue)
        if len(held) > rng.randrange(1, 4):
            held.pop(0)


def test_a_buffer_goes_out_again_only_once_no_frame_holds_it():
    pool = FramePool((H * 3 // 2, W), _split)
    first = pool.take()
    frame = av.VideoFrame.from_numpy_buffer(first.array, format="yuv420p")
    second = pool.take()
    assert second is not first  # ``frame`` still holds the first
    del frame
    assert pool.take() in (first, second)


def test_a_saved_stamp_area_comes_back_when_the_buffer_is_taken_again():
    pool = FramePool((H * 3 // 2, W), _split)
    canvas = pool.take()
    canvas.array[:] = 7
    canvas.key = ("layout",)
    canvas.save(Rect(0, 0, W, 4))
    canvas.array[:4] = 255
    assert pool.take() is canvas
    assert (canvas.array == 7).all() and canvas.key == ("layout",)
    canvas.forget()
    assert canvas.key is None and not canvas.painted
