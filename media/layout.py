"""Pure geometry: named layouts -> rectangles on a canvas.

No I/O, no frames, no clock: ``compute_layout`` maps a canvas size, a layout name
and the set of inputs that currently have a picture to a list of tiles, painted
in order (later tiles on top). Every coordinate and size is even, because a
yuv420p frame subsamples chroma by two in both directions: an odd edge would
smear a chroma sample across two tiles.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

# Input names, shared by the compositor and the call layer.
AGENT = "agent"
SCREEN = "screen"
AVATAR = "avatar"
CUSTOMER = "customer"

LAYOUTS = ("agent", "screen", "side_by_side", "avatar", "avatar_screen")
"""agent: the agent's camera full frame. screen: the screen full frame, the agent picture-in-picture
bottom-right (and the avatar stacked above it when present). side_by_side: agent left, screen right.
avatar: the avatar full frame. avatar_screen: the screen with the avatar picture-in-picture."""


@dataclass(frozen=True, slots=True)
class Size:
    """A width and a height in pixels."""

    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Rect:
    """An axis-aligned rectangle: top-left corner and size, in pixels."""

    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height


@dataclass(frozen=True, slots=True)
class Tile:
    """Where one input goes: ``cell`` is its area, ``content`` the letterboxed picture inside it."""

    name: str
    cell: Rect
    content: Rect


SIZES: dict[str, Size] = {
    "360p": Size(640, 360),
    "540p": Size(960, 540),
    "720p": Size(1280, 720),
    "1080p": Size(1920, 1080),
}

# Picture-in-picture: a quarter of the canvas width, inset by a small margin.
PIP_FRACTION = 0.25
PIP_MARGIN_FRACTION = 0.025


def parse_size(value: str | Size) -> Size:
    """A :class:`Size` from a name such as ``"720p"`` or a ``"1280x720"`` string."""
    if isinstance(value, Size):
        return value
    if value in SIZES:
        return SIZES[value]
    try:
        width, height = (int(part) for part in value.lower().split("x"))
    except ValueError:
        raise ValueError(f"unknown size {value!r}: use one of {sorted(SIZES)} or WIDTHxHEIGHT") from None
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise ValueError(f"size {value!r} must be even and at least 2x2")
    return Size(width, height)


def _even(value: float) -> int:
    return int(value) // 2 * 2


def fit(source: Size, cell: Rect) -> Rect:
    """The largest rectangle of ``source``'s aspect ratio centred in ``cell`` (letterbox or pillarbox)."""
    if source.width <= 0 or source.height <= 0:
        return cell
    scale = min(cell.width / source.width, cell.height / source.height)
    width = max(2, min(cell.width, _even(source.width * scale + 1e-6)))
    height = max(2, min(cell.height, _even(source.height * scale + 1e-6)))
    x = cell.x + _even((cell.width - width) / 2)
    y = cell.y + _even((cell.height - height) / 2)
    return Rect(x, y, width, height)


def _pip(canvas: Size, stack: int = 0) -> Rect:
    """A bottom-right picture-in-picture cell with the canvas's aspect ratio; ``stack`` counts upwards."""
    width = max(2, _even(canvas.width * PIP_FRACTION))
    height = max(2, _even(width * canvas.height / canvas.width))
    margin = _even(canvas.width * PIP_MARGIN_FRACTION)
    y = max(0, canvas.height - (height + margin) * (stack + 1))
    return Rect(canvas.width - width - margin, y, width, height)


def _full(canvas: Size) -> Rect:
    return Rect(0, 0, canvas.width, canvas.height)


def _halves(canvas: Size) -> tuple[Rect, Rect]:
    half = _even(canvas.width / 2)
    return Rect(0, 0, half, canvas.height), Rect(half, 0, canvas.width - half, canvas.height)


def _cells(canvas: Size, name: str, present: Collection[str]) -> list[tuple[str, Rect]]:
    """Cells by layout; an absent input's cell is dropped and the rest reflow."""
    if name == "agent":
        return [(AGENT, _full(canvas))] if AGENT in present else []
    if name in ("screen", "side_by_side"):
        main, pip = SCREEN, AGENT
    elif name in ("avatar", "avatar_screen"):
        if name == "avatar" or SCREEN not in present:
            return [(AVATAR, _full(canvas))] if AVATAR in present else []
        main, pip = SCREEN, AVATAR
    else:
        raise ValueError(f"unknown layout {name!r}: use one of {LAYOUTS}")
    if main not in present:
        return [(pip, _full(canvas))] if pip in present else []
    if pip not in present:
        return [(main, _full(canvas))]
    if name == "side_by_side":
        left, right = _halves(canvas)
        return [(AGENT, left), (SCREEN, right)]
    cells = [(main, _full(canvas)), (pip, _pip(canvas))]
    if name == "screen" and AVATAR in present:
        # A handover with a screen up: the avatar stacks above the agent's picture.
        cells.append((AVATAR, _pip(canvas, 1)))
    return cells


def compute_layout(
    canvas: Size,
    name: str,
    present: Collection[str],
    sources: Mapping[str, Size] | None = None,
) -> list[Tile]:
    """Tiles for layout ``name`` on ``canvas``, in painting order (later on top).

    Args:
        canvas: output size; must be even.
        name: one of :data:`LAYOUTS`.
        present: the inputs that have a picture to show (the compositor counts the
            agent's placeholder as present). Absent inputs get no tile; the others reflow.
        sources: each input's frame size, for aspect-correct letterboxing; an input
            not listed fills its cell.

    Raises:
        ValueError: an unknown layout name or an odd canvas.
    """
    if canvas.width % 2 or canvas.height % 2:
        raise ValueError(f"canvas {canvas} must have even sides for yuv420p")
    sources = sources or {}
    tiles = []
    for input_name, cell in _cells(canvas, name, present):
        source = sources.get(input_name)
        content = fit(source, cell) if source is not None else cell
        tiles.append(Tile(input_name, cell, content))
    return tiles
