"""The compositor's output buffers, each painted in place and brought up to date by what changed.

Every composite goes out as a FRESH frame (aiortc's encoder holds it, in another thread, while
it encodes), so each frame is painted into a buffer no live frame uses. A buffer that went out
a frame or two ago already holds most of the picture: each :class:`Canvas` remembers what it
shows (the layout it was painted whole for, and the version of each tile's input), so the
compositor repaints only the tiles that changed since (in a screen layout, the
pictures-in-picture) and writes nothing twice: no separate canvas copied into each frame
(1.4 MB at 720p, a cold write per frame). Buffers are recycled rather than allocated: a fresh
1.4 MB array is mmap'd by malloc, and its page faults show up in the p95.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from media.layout import Rect
from media.planes import Planes

POOL_SIZE = 8  # buffers kept for reuse; frames in flight beyond that get fresh ones


@dataclass(eq=False)
class Canvas:
    """One output buffer (contiguous yuv420p) and what it shows."""

    array: np.ndarray
    planes: Planes
    key: tuple | None = None  # the layout it was painted whole for; None: paint it whole
    painted: dict[str, tuple[int, Rect]] = field(default_factory=dict)  # tile -> (version, content)
    free_refs: int = 0  # sys.getrefcount of the array when nothing but the pool holds it
    # (plane, rows, columns, its pixels): copies only, since a view would hold the array (in use).
    _saved: list[tuple[int, slice, slice, np.ndarray]] = field(default_factory=list)

    def save(self, rect: Rect) -> None:
        """Keep what the picture shows in ``rect``, about to be written over for this frame only
        (a stamp): it is put back when the buffer is taken again."""
        luma = (slice(rect.y, rect.bottom), slice(rect.x, rect.right))
        chroma = (slice(rect.y // 2, rect.bottom // 2), slice(rect.x // 2, rect.right // 2))
        for index, (rows, cols) in enumerate((luma, chroma, chroma)):
            self._saved.append((index, rows, cols, self.planes[index][rows, cols].copy()))

    def restore(self) -> None:
        for index, rows, cols, pixels in self._saved:
            self.planes[index][rows, cols] = pixels
        self._saved.clear()

    def forget(self) -> None:
        """Its content is no longer a picture of the tiles (a cross-fade wrote it): paint it whole."""
        self.key = None
        self.painted.clear()
        self._saved.clear()


class FramePool:
    """Buffers of ``shape`` (a yuv420p frame as one array) handed out by :meth:`take`.

    Args:
        shape: the array's shape, ``(height * 3 // 2, width)``.
        split: the Y, U and V views of such an array.
    """

    def __init__(self, shape: tuple[int, int], split: Callable[[np.ndarray], Planes]) -> None:
        self._shape = shape
        self._split = split
        self._pool: list[Canvas] = []
        self._last: Canvas | None = None  # the buffer taken last: what went out most recently

    def take(self) -> Canvas:
        """A buffer no frame uses, showing what it showed when it last went out (stamps removed)."""
        canvas = self._free()
        canvas.restore()
        self._last = canvas
        return canvas

    def last(self) -> np.ndarray | None:
        """The picture that went out last (until the next :meth:`take`: then it may be reused)."""
        return self._last.array if self._last is not None else None

    def forget(self) -> None:
        """Every buffer is painted whole next time (the placeholder's name changed, say)."""
        for canvas in self._pool:
            canvas.forget()

    def clear(self) -> None:
        self._pool.clear()
        self._last = None

    def _free(self) -> Canvas:
        for canvas in self._pool:
            # Any reference beyond the pool's own (a VideoFrame in the encoder or a test) means
            # the buffer is in use.
            if sys.getrefcount(canvas.array) <= canvas.free_refs:
                return canvas
        array = np.empty(self._shape, np.uint8)
        canvas = Canvas(array, self._split(array))
        del array
        if len(self._pool) < POOL_SIZE:
            self._pool.append(canvas)
        canvas.free_refs = sys.getrefcount(canvas.array)
        return canvas


def split_yuv420(w: int, h: int, buffer: np.ndarray) -> Planes:
    """The Y, U and V views of one yuv420p frame stored as one ``(h * 3 // 2, w)`` array."""
    flat = buffer.reshape(-1)
    y = flat[: w * h].reshape(h, w)
    u = flat[w * h : w * h * 5 // 4].reshape(h // 2, w // 2)
    v = flat[w * h * 5 // 4 :].reshape(h // 2, w // 2)
    return y, u, v
