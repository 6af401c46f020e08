"""Output buffers for the compositor's fresh frames, brought up to date by copying only what changed.

Every composite goes out as a FRESH frame (aiortc's encoder holds it, in another thread, while
it encodes), so the canvas is copied into a buffer no live frame uses. A buffer that went out
a frame or two ago already holds most of the picture: only what was painted since then (in a
screen layout, the pictures-in-picture: ~12 % of the canvas) is copied, not the whole canvas
(1.4 MB at 720p, a cold write each frame). Buffers are recycled rather than allocated: a fresh
1.4 MB array is mmap'd by malloc, and its page faults show up in the p95.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from media.layout import Rect
from media.planes import Planes

POOL_SIZE = 8  # buffers kept for reuse; frames in flight beyond that get fresh ones
HISTORY = 16  # paints remembered; a buffer older than that is copied whole
WHOLE_SHARE = 0.5  # changed rectangles covering this share of the canvas: one whole copy is cheaper


@dataclass(eq=False)
class _Buffer:
    array: np.ndarray
    planes: Planes
    generation: int | None  # the canvas's generation it holds; None: something else (a fade)
    stains: list[Rect] = field(default_factory=list)  # written after the copy (a stamp)
    free_refs: int = 0  # sys.getrefcount of the array when nothing but the pool holds it


class FramePool:
    """Buffers shaped like ``canvas`` that :meth:`take` brings up to date with it.

    Args:
        canvas: the contiguous yuv420p buffer the compositor paints.
        split: the Y, U and V views of a buffer shaped like ``canvas``.
    """

    def __init__(self, canvas: np.ndarray, split: Callable[[np.ndarray], Planes]) -> None:
        self._canvas = canvas
        self._canvas_planes = split(canvas)
        self._split = split
        self._area = self._canvas_planes[0].size
        self._pool: list[_Buffer] = []
        self.generation = 0
        self._history: deque[tuple[int, tuple[Rect, ...] | None]] = deque(maxlen=HISTORY)
        self.copied_whole = 0  # takes that copied the whole canvas (the rest copied rectangles)

    def painted(self, rects: Iterable[Rect] | None) -> None:
        """The canvas changed in ``rects`` (``None``: anywhere); nothing to do for no rectangle."""
        rects = None if rects is None else tuple(rects)
        if rects == ():
            return
        self.generation += 1
        self._history.append((self.generation, rects))

    def take(self, *, copy: bool = True) -> np.ndarray:
        """A buffer no frame uses, holding the canvas; with ``copy=False`` its content is the
        caller's to write whole (it is copied whole the next time it is taken)."""
        entry = self._free()
        if not copy:
            entry.generation = None
            entry.stains.clear()
            return entry.array
        rects = self._changed_since(entry.generation)
        if rects is not None:
            rects = set(rects) | set(entry.stains)
            if sum(r.width * r.height for r in rects) >= WHOLE_SHARE * self._area:
                rects = None
        if rects is None:
            np.copyto(entry.array, self._canvas)
            self.copied_whole += 1
        else:
            for rect in rects:
                self._copy(rect, entry.planes)
        entry.generation = self.generation
        entry.stains.clear()
        return entry.array

    def stained(self, array: np.ndarray, rect: Rect) -> None:
        """``rect`` of a taken buffer was written over (a stamp): copied again at its next take."""
        for entry in self._pool:
            if entry.array is array:
                entry.stains.append(rect)
                return

    def clear(self) -> None:
        self._pool.clear()
        self._history.clear()

    def _changed_since(self, generation: int | None) -> list[Rect] | None:
        """The rectangles painted after ``generation``; ``None``: too long ago, or everything."""
        if generation is None:
            return None
        behind = self.generation - generation
        if behind > len(self._history):
            return None
        rects: list[Rect] = []
        for index in range(len(self._history) - behind, len(self._history)):
            changed = self._history[index][1]
            if changed is None:
                return None
            rects.extend(changed)
        return rects

    def _copy(self, rect: Rect, planes: Planes) -> None:
        y, u, v = planes
        cy, cu, cv = self._canvas_planes
        y[rect.y : rect.bottom, rect.x : rect.right] = cy[rect.y : rect.bottom, rect.x : rect.right]
        rows, cols = slice(rect.y // 2, rect.bottom // 2), slice(rect.x // 2, rect.right // 2)
        u[rows, cols] = cu[rows, cols]
        v[rows, cols] = cv[rows, cols]

    def _free(self) -> _Buffer:
        for entry in self._pool:
            # Any reference beyond the pool's own (a VideoFrame in the encoder or a test, the
            # compositor's last output, a fade) means the buffer is in use.
            if sys.getrefcount(entry.array) <= entry.free_refs:
                return entry
        array = np.empty_like(self._canvas)
        entry = _Buffer(array, self._split(array), None)
        del array
        entry.free_refs = sys.getrefcount(entry.array)
        if len(self._pool) < POOL_SIZE:
            self._pool.append(entry)
            entry.free_refs = sys.getrefcount(entry.array)
        return entry
