"""Painting a composite's tiles into an output buffer: only what changed, each input resized once.

A :class:`~media.frame_pool.Canvas` remembers what it shows; :meth:`TilePainter.paint` brings it
up to date with the tiles of the current layout: a tile is repainted only when its input has a
new frame since that buffer went out, its geometry changed, or a tile beneath it was repainted.
A resized picture is cached per input frame (the halving cascade of media.planes, through the
screen's limits of media.screen_limits); a frame in another pixel format is converted once; the
agent's placeholder is drawn once per name and size.
"""

from __future__ import annotations

import av

from media.frame_pool import Canvas
from media.layout import Rect, Tile
from media.placeholder import render_placeholder
from media.planes import Planes, frame_planes
from media.screen_limits import ScreenLimits, fit_planes
from media.tracks import FrameSlot

BACKGROUND_YUV = (28, 136, 124)  # a dark slate, not black: letterbox bars and empty areas
PLACEHOLDER_VERSION = -1


def _overlaps(a: Rect, b: Rect) -> bool:
    return a.x < b.right and b.x < a.right and a.y < b.bottom and b.y < a.bottom


def _fill(planes: Planes, rect: Rect) -> None:
    y, u, v = planes
    y[rect.y : rect.bottom, rect.x : rect.right] = BACKGROUND_YUV[0]
    u[rect.y // 2 : rect.bottom // 2, rect.x // 2 : rect.right // 2] = BACKGROUND_YUV[1]
    v[rect.y // 2 : rect.bottom // 2, rect.x // 2 : rect.right // 2] = BACKGROUND_YUV[2]


class TilePainter:
    """Paints the compositor's ``slots`` into canvases; the screen's detail follows ``screen_limits``.

    ``agent_name``: the name on the agent's placeholder tile (the compositor keeps it current).
    """

    def __init__(self, slots: dict[str, FrameSlot], screen_limits: ScreenLimits) -> None:
        self.slots = slots
        self.screen_limits = screen_limits
        self.agent_name: str | None = ""
        self._cache: dict[str, tuple[int, int, int, Planes]] = {}  # name -> (version, w, h, planes)
        self._converted: dict[str, tuple[int, av.VideoFrame]] = {}
        self._scratch: dict[str, tuple[dict, dict, dict]] = {}  # resized pictures' buffers, per input
        self._work: dict = {}  # the resizes' temporaries, one set for every input (media.planes)
        self._placeholders: dict[tuple[str, int, int], Planes] = {}

    def clear(self) -> None:
        """Let go of every cached picture and buffer (an ended compositor)."""
        for cache in (self._cache, self._converted, self._scratch, self._work, self._placeholders):
            cache.clear()

    def paint(self, canvas: Canvas, tiles: list[Tile], key: tuple) -> None:
        """Bring ``canvas`` up to date: the tiles whose picture changed since it went out last,
        and those above a repainted one; everything when the layout is not the one it shows."""
        if key != canvas.key:
            canvas.key = key
            canvas.painted.clear()
            for plane, value in zip(canvas.planes, BACKGROUND_YUV, strict=True):
                plane.fill(value)
        dirty: list[Rect] = []
        for tile in tiles:
            version = self._version(tile.name)
            painted = canvas.painted.get(tile.name)
            if painted == (version, tile.content) and not any(_overlaps(tile.cell, d) for d in dirty):
                continue
            self._paint_tile(canvas.planes, tile, version)
            canvas.painted[tile.name] = (version, tile.content)
            dirty.append(tile.cell)

    def _version(self, name: str) -> int:
        slot = self.slots.get(name)
        if slot is None or not slot.present or slot.latest is None:
            return PLACEHOLDER_VERSION
        return slot.latest.version

    def _paint_tile(self, target: Planes, tile: Tile, version: int) -> None:
        cell, content = tile.cell, tile.content
        if content != cell:
            _fill(target, cell)
        planes = self._source_planes(tile.name, version, content.width, content.height)
        x, y, w, h = content.x, content.y, content.width, content.height
        cy, cu, cv = target
        cy[y : y + h, x : x + w] = planes[0]
        cu[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = planes[1]
        cv[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = planes[2]
        slot = self.slots.get(tile.name)
        if slot is not None and version != PLACEHOLDER_VERSION:
            slot.mark_read(version)

    def _source_planes(self, name: str, version: int, width: int, height: int) -> Planes:
        """The input's picture at ``width`` x ``height``, resized at most once per input frame."""
        if version == PLACEHOLDER_VERSION:
            key = (self.agent_name or "", width, height)
            if key not in self._placeholders:
                self._placeholders[key] = render_placeholder(self.agent_name or "", width, height)
            return self._placeholders[key]
        cached = self._cache.get(name)
        if cached is not None and cached[:3] == (version, width, height):
            return cached[3]
        frame = self.slots[name].latest.frame  # type: ignore[union-attr]
        if frame.format.name != "yuv420p":
            converted = self._converted.get(name)
            if converted is None or converted[0] != version:
                # The one colour conversion this input frame gets.
                converted = (version, frame.reformat(format="yuv420p", threads=1))
                self._converted[name] = converted
            frame = converted[1]
        scratch, scale = self._scratch.setdefault(name, ({}, {}, {})), self.screen_limits.scale_of(name)
        planes = fit_planes(frame_planes(frame), width, height, scratch, scale, self._work)
        self._cache[name] = (version, width, height, planes)
        return planes
