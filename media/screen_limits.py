"""The server's own cap on the screen tile: at most so many new frames a second, and less detail.

When the server sheds load (``telepresence.admission``) it asks the agent's browser to cap its
screen sender; a sender that ignores that (an old client, a publisher of its own) would still
cost full compositing. These limits hold the screen tile to the same step on the server:

- **Frame rate.** :class:`LimitedSlot` is the screen's input slot: it takes at most ``max_fps``
  new frames a second (:class:`FpsGate`) and drops the others as they arrive, before any
  conversion or resize, so the tile's cached picture is reused and the tile is repainted only
  for the frames it takes. The frames are still DECODED: aiortc decodes every frame in its
  decoder thread before the drain sees it, and skipping a decode is only safe for a frame no
  later frame refers to (VP8's non-reference ``N`` bit, H.264's ``nal_ref_idc`` 0), which a
  sender need not mark; only the sender's own cap (``sender_limits``) spares the decode.
- **Resolution.** With ``scale`` below 1 the tile is drawn from a picture of at most ``scale``
  times the tile's size (:func:`detail_size`): the source is resized down to it (the same
  halving cascade as any tile, one step further, so no dearer) and back up to the tile, so
  the composite keeps its size and the tile its place, with a softer picture that costs the
  encoder fewer bits. A source already that small is drawn as it is.

The agent's camera and the avatar are never limited: only the screen's slot is a
:class:`LimitedSlot`. The decisions (:class:`FpsGate`, :func:`detail_size`) are pure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import av

from media.planes import Planes, scale_plane
from media.tracks import FrameSlot

# A frame up to this share of an interval early is taken: arrival jitter is no reason to halve the rate.
SLACK = 0.25


@dataclass
class FpsGate:
    """Takes at most ``max_fps`` frames a second on average (``None``: all of them).

    Each frame taken books the next one an interval later; a frame that arrives before that
    (less :data:`SLACK` of an interval) is refused. Bookings follow on from each other, so a
    30 fps source capped at 5 takes every sixth frame, not every seventh; after a pause longer
    than an interval the schedule starts again from the next frame (no burst to catch up).
    """

    max_fps: float | None = None
    _due: float | None = field(default=None, repr=False)

    def admit(self, now: float) -> bool:
        """Whether a frame arriving at ``now`` (seconds) is taken."""
        if self.max_fps is None:
            return True
        interval = 1.0 / self.max_fps
        if self._due is not None and now < self._due - SLACK * interval:
            return False
        start = self._due if self._due is not None and now - self._due < interval else now
        self._due = start + interval
        return True

    def reset(self, max_fps: float | None) -> None:
        """A new cap, from the next frame on."""
        self.max_fps = max_fps if max_fps is None or max_fps > 0 else None
        self._due = None


def detail_size(source: tuple[int, int], tile: tuple[int, int], scale: float) -> tuple[int, int] | None:
    """The size a tile's picture is drawn at before it is brought to the tile's size; None: at
    the tile's own size (no scale, or a source no larger than ``scale`` of the tile)."""
    if scale >= 1.0:
        return None
    width, height = max(2, round(tile[0] * scale) // 2 * 2), max(2, round(tile[1] * scale) // 2 * 2)
    if source[0] <= width and source[1] <= height:
        return None
    return width, height


def fit_planes(
    planes: Planes,
    width: int,
    height: int,
    scratch: tuple[dict, dict, dict],
    scale: float = 1.0,
    work: dict | None = None,
) -> Planes:
    """A yuv420p picture's planes at ``width`` x ``height`` (the source's own when it is that
    size), through a picture of at most ``scale`` of that size (:func:`detail_size`); ``work``:
    temporaries shared with other inputs (:func:`media.planes.scale_plane`)."""
    source = (planes[0].shape[1], planes[0].shape[0])
    detail = detail_size(source, (width, height), scale)
    if detail is not None:
        dw, dh = detail
        planes = (
            scale_plane(planes[0], dw, dh, scratch[0], work=work),
            scale_plane(planes[1], dw // 2, dh // 2, scratch[1], work=work),
            scale_plane(planes[2], dw // 2, dh // 2, scratch[2], work=work),
        )
        source = detail
    if source == (width, height):
        return planes
    return (
        scale_plane(planes[0], width, height, scratch[0], work=work),
        scale_plane(planes[1], width // 2, height // 2, scratch[1], work=work),
        scale_plane(planes[2], width // 2, height // 2, scratch[2], work=work),
    )


class ScreenLimits:
    """The screen tile's limits in force: ``max_fps`` (None: none) and ``scale`` (1.0: full).

    The compositor holds one and makes its screen slot with :meth:`slot`.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.gate = FpsGate()
        self.scale = 1.0
        self._clock = clock
        self._slot: LimitedSlot | None = None

    @property
    def max_fps(self) -> float | None:
        return self.gate.max_fps

    def set(self, max_fps: float | None, scale: float = 1.0) -> None:
        """Hold the screen to ``max_fps`` new frames a second and ``scale`` of its tile's detail
        (``None``, 1.0: as sent). A new scale redraws the tile's current picture at once."""
        if not 0 < scale <= 1:
            raise ValueError(f"screen scale {scale} is not in (0, 1]")
        if max_fps != self.gate.max_fps:
            self.gate.reset(max_fps)
        if scale != self.scale:
            self.scale = scale
            if self._slot is not None:
                self._slot.retake()

    def scale_of(self, name: str) -> float:
        """The detail input ``name`` is drawn at: the screen's scale, 1.0 for any other input."""
        return self.scale if self._slot is not None and name == self._slot.name else 1.0

    def slot(self, name: str) -> LimitedSlot:
        """The screen's input slot, held to these limits."""
        self._slot = LimitedSlot(name, self, clock=self._clock)
        return self._slot


class LimitedSlot(FrameSlot):
    """A screen's slot: frames past the limits' rate are dropped as they arrive (counted in
    :attr:`limited`), so they cost nothing past their decode. Hidden once its input ends."""

    def __init__(
        self, name: str, limits: ScreenLimits, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(name, hide_when_ended=True, clock=clock)
        self.limits = limits
        self.limited = 0

    def put(self, frame: av.VideoFrame) -> None:
        # A share that (re)starts shows its first frame at once, whatever the gate says.
        if not self.limits.gate.admit(self._clock()) and self.latest is not None:
            self.limited += 1
            return
        super().put(frame)

    def retake(self) -> None:
        """Offer the current picture again as a new version, so the compositor draws it anew
        (a new scale); an ended screen stays ended."""
        latest, ended = self.latest, self.ended
        if latest is not None:
            super().put(latest.frame)
            self.ended = ended
