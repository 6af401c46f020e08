"""FramePool: every buffer it hands out holds exactly the canvas, however few bytes it copied."""

import random

import numpy as np

from media.frame_pool import HISTORY, FramePool
from media.layout import Rect

W, H = 64, 32


def _split(buffer: np.ndarray):
    flat = buffer.reshape(-1)
    return (
        flat[: W * H].reshape(H, W),
        flat[W * H : W * H * 5 // 4].reshape(H // 2, W // 2),
        flat[W * H * 5 // 4 :].reshape(H // 2, W // 2),
    )


def _paint(canvas: np.ndarray, rect: Rect, value: int) -> None:
    y, u, v = _split(canvas)
    y[rect.y : rect.bottom, rect.x : rect.right] = value
    for plane in (u, v):
        plane[rect.y // 2 : rect.bottom // 2, rect.x // 2 : rect.right // 2] = value // 2


def test_buffers_match_the_canvas_through_small_paints_held_frames_and_stains() -> None:
    rng = random.Random(7)
    canvas = np.zeros((H * 3 // 2, W), np.uint8)
    pool = FramePool(canvas, _split)
    held: list[np.ndarray] = []
    for step in range(300):
        if step % 50 == 0:
            canvas[:] = rng.randrange(256)
            pool.painted(None)
        else:
            rects = []
            for _ in range(rng.randrange(3)):
                x, y = rng.randrange(0, W - 2, 2), rng.randrange(0, H - 2, 2)
                rect = Rect(x, y, rng.randrange(2, W - x + 1, 2), rng.randrange(2, H - y + 1, 2))
                _paint(canvas, rect, rng.randrange(256))
                rects.append(rect)
            pool.painted(rects)
        out = pool.take()
        assert np.array_equal(out, canvas), step
        if rng.random() < 0.3:
            out[:2] = 255  # a stamp written into this frame only
            pool.stained(out, Rect(0, 0, W, 2))
        # Frames in flight for a while (an encoder's queue), up to more than the history.
        held.append(out)
        if len(held) > rng.randrange(1, 4):
            held.pop(0)
        if step % 97 == 0:
            held.clear()
    assert pool.copied_whole < 150  # most takes copied rectangles only


def test_a_buffer_older_than_the_history_is_copied_whole() -> None:
    canvas = np.zeros((H * 3 // 2, W), np.uint8)
    pool = FramePool(canvas, _split)
    first = pool.take()
    kept = first
    del first
    second = pool.take()  # ``kept`` is in use: another buffer
    del second
    for value in range(HISTORY + 2):
        _paint(canvas, Rect(0, 0, 2, 2), value)
        pool.painted([Rect(0, 0, 2, 2)])
    _paint(canvas, Rect(W - 2, H - 2, 2, 2), 99)
    pool.painted([Rect(W - 2, H - 2, 2, 2)])
    del kept
    for _ in range(2):
        assert np.array_equal(pool.take(), canvas)


def test_a_buffer_taken_without_copy_is_refreshed_whole_next_time() -> None:
    canvas = np.full((H * 3 // 2, W), 9, np.uint8)
    pool = FramePool(canvas, _split)
    out = pool.take(copy=False)
    out[:] = 1  # a cross-fade writes it all
    del out
    assert np.array_equal(pool.take(), canvas)
