"""CompositorTrack: input slots + a named layout -> one outgoing video track.

The frame path, in the order it runs (see DESIGN "Frame path and latency budget"):

- ``recv`` waits for the PRIMARY input (the agent's camera, or the avatar) to
  bring a new frame and composes at once, so no clock wait is added. Only when
  the primary stalls does the compositor's own clock (``fps``) take over, so the
  output keeps flowing with frozen tiles.
- Composing is done in yuv420p planes, in place, in an output buffer no live frame
  uses (media.frame_pool). Each buffer remembers what it shows: a tile is repainted
  only when its input has a new frame since that buffer went out, its geometry
  changed, or a tile beneath it was repainted; a resized picture is cached per input
  frame; a frame in another pixel format is converted once (media.tile_painter).
- Every output is a FRESH ``av.VideoFrame`` over its own buffer, with no picture
  type: aiortc's VP8 encoder never resets ``pict_type``, so a reused or I-tagged
  frame would force a keyframe each time.
- Its pts run on the monotonic clock (90 kHz), a fresh picture's spaced as its camera captured
  it (media.source_spacing): frames bunched on the way in are not shown as one by a browser.
- ``set_layout`` changes geometry in place (no renegotiation) and cross-fades
  from the last output picture, so a switch never shows a black frame.
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import logging
import time
from collections.abc import Callable

import av
import cv2
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.capture_clock import CompositeTimes
from media.frame_pool import FramePool, split_yuv420
from media.layout import AGENT, AVATAR, LAYOUTS, SCREEN, Rect, Size, Tile, compute_layout, parse_size
from media.receipt import LatencyReceipt
from media.screen_limits import ScreenLimits
from media.source_spacing import SourceSpacedClock
from media.stamp import read_stamp, strip_height, write_stamp
from media.tile_painter import TilePainter
from media.tracks import FrameSlot, TrackDrain

logger = logging.getLogger(__name__)

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
STALL_INTERVALS = 2.0  # the primary is stalled after this many frame intervals without a frame
MAX_PATIENCE_S = 0.25  # ... or after twice its own recent interval, but never longer than this


class CompositorTrack(MediaStreamTrack):
    """A video track composed from input slots by a named layout.

    Args:
        size: output size, a name (``"360p"`` ... ``"1080p"``) or a :class:`~media.layout.Size`.
        layout: initial layout, one of :data:`media.layout.LAYOUTS`.
        fps: the fallback clock's rate when the primary input stalls.
        agent_name: shown with initials on a placeholder tile while the agent's
            camera has no picture; ``None`` hides the agent's tile instead.
        fade_ms: duration of the cross-fade on a layout change (0: cut).
        carry_stamp: copy a :mod:`media.stamp` found in the primary input's frame
            into the output, so latency can be read through the compositor.
        receipt: where compose timings go (``"compose"``, ``"slot_wait"``, ``"clock_frames"``).
        clock: monotonic seconds, injectable for tests.
    """

    kind = "video"

    def __init__(
        self,
        *,
        size: str | Size = "720p",
        layout: str = "agent",
        fps: float = 30.0,
        agent_name: str | None = "",
        fade_ms: float = 250.0,
        carry_stamp: bool = True,
        receipt: LatencyReceipt | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}: use one of {LAYOUTS}")
        self.size = parse_size(size)
        self.fps = fps
        self._agent_name = agent_name
        self.fade_s = fade_ms / 1000
        self.carry_stamp = carry_stamp
        self.receipt = receipt if receipt is not None else LatencyReceipt()
        self._clock = clock
        self._layout = layout
        self.screen_limits = ScreenLimits(clock)  # the screen's rate and detail (media.screen_limits)
        self.slots: dict[str, FrameSlot] = {}
        self.drains: dict[str, TrackDrain] = {}
        w, h = self.size.width, self.size.height
        self._layout_key: tuple | None = None
        self._tiles: list[Tile] = []
        self.painter = TilePainter(self.slots, self.screen_limits)  # media.tile_painter
        self.painter.agent_name = agent_name
        # Output buffers, each painted in place with only what changed since it last went out; one
        # contiguous yuv420p array each, the layout av.VideoFrame.from_numpy_buffer expects.
        # A function of the size, not a bound method: the pool must hold no reference back to
        # the compositor, or an ended call's compositor waits for the cycle collector.
        self._outputs = FramePool((h * 3 // 2, w), functools.partial(split_yuv420, w, h))
        self._fade_from: np.ndarray | None = None
        self._fade_start = 0.0
        self._primary_seen = 0
        self._stalled = False
        self._last_emit: float | None = None
        self._last_fresh: float | None = None  # when a frame with a new primary picture went out
        self._fresh_before: float | None = None  # ... and the one before it
        self._primary_interval = 1 / fps  # the primary's recent frame interval, smoothed
        # On the monotonic clock itself, not from the first frame: a call's video switches between
        # the composite and the agent's camera forwarded as it came (media.passthrough stamps its
        # packets the same way), and the customer's RTP timestamps must not jump back at a switch.
        # A fresh primary frame is spaced as its source captured it (media.source_spacing).
        self._timeline = SourceSpacedClock(90000)
        self.frames = 0
        self.clock_frames = 0
        # When each composite's picture was captured, and its first packet came (media.capture_clock).
        self.times = CompositeTimes(self.receipt)

    # -- inputs and layout -------------------------------------------------

    def slot(self, name: str) -> FrameSlot:
        """The slot for input ``name``, created on first use (a screen hides when it ends, others freeze)."""
        slot = self.slots.get(name)
        if slot is None:
            slot = self.slots[name] = self.screen_limits.slot(name) if name == SCREEN else FrameSlot(name)
        return slot

    async def attach(self, name: str, track: MediaStreamTrack, *, label: str = "") -> TrackDrain:
        """Feed ``track`` into input ``name`` through a drain the compositor owns.

        A track already attached to ``name`` is detached first (its drain stopped). The
        slot keeps its last picture until the new track's first frame, so a swap shows no gap.
        """
        await self.detach(name, clear=False)
        drain = TrackDrain(track, self.slot(name), label=f"{label} {name}".strip())
        self.drains[name] = drain
        return drain

    async def detach(self, name: str, *, clear: bool = True) -> None:
        """Stop feeding input ``name``; with ``clear`` its tile goes (placeholder for the agent)."""
        drain = self.drains.pop(name, None)
        if drain is not None:
            await drain.stop()
        if clear and name in self.slots:
            self.slots[name].clear()

    async def close(self) -> None:
        """Stop every drain and end the track (``recv`` raises ``MediaStreamError``); idempotent."""
        for name in list(self.drains):
            await self.detach(name, clear=False)
        self.stop()
        # An ended track composes nothing more: let go of its frames and buffers (~13 MB at
        # 720p) now, not when the last reference to the track goes.
        for slot in self.slots.values():
            slot.clear()
        self.painter.clear()
        self._outputs.clear()
        self.times.clear()
        self._fade_from = None

    @property
    def agent_name(self) -> str | None:
        """The name on the agent's placeholder tile; ``None``: no placeholder, the tile is hidden."""
        return self._agent_name

    @agent_name.setter
    def agent_name(self, name: str | None) -> None:
        self._agent_name = self.painter.agent_name = name
        self._outputs.forget()  # repaint everything with the new placeholder

    @property
    def layout(self) -> str:
        """The current layout's name."""
        return self._layout

    @property
    def shows_only_agent(self) -> bool:
        """Whether the composite would only be the agent's camera: its layout alone, no cross-fade,
        a camera no larger than the output (media.passthrough may then forward the camera's own
        frames, at their own size, as a direct call would show them)."""
        slot = self.slots.get(AGENT)
        latest = slot.latest if slot is not None else None
        return (
            self._layout == "agent"
            and self._fade_from is None
            and latest is not None
            and slot.present
            and latest.frame.width <= self.size.width
            and latest.frame.height <= self.size.height
        )

    @property
    def primary(self) -> str:
        """The input whose new frames trigger a composite: the avatar in avatar layouts, else the agent."""
        return AVATAR if self._layout.startswith("avatar") else AGENT

    def set_layout(self, name: str) -> None:
        """Switch layout from the next frame on, cross-fading from the last output picture."""
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}: use one of {LAYOUTS}")
        if name == self._layout:
            return
        logger.info("layout %s -> %s", self._layout, name)
        self._layout = name
        self._primary_seen = 0  # a different primary: its current frame is new to us
        self._primary_interval = 1 / self.fps  # ... and its cadence is yet to be learnt
        self._timeline.reset()  # ... and its own capture clock
        last = self._outputs.last()
        if self.fade_s > 0 and last is not None:
            # A copy: the buffer goes out again with the next frame.
            self._fade_from = last.copy()
            self._fade_start = self._clock()

    # -- the track ---------------------------------------------------------

    async def recv(self) -> av.VideoFrame:
        """The next composite: as soon as the primary has a new frame, else on the fallback clock."""
        if self.readyState != "live":
            raise MediaStreamError
        interval = 1 / self.fps
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._fresh_before is not None:
            # Never faster than twice the nominal rate, whatever an input sends: at most two fresh
            # frames an interval. Not half an interval after the last one: a camera frame that
            # comes soon after a late one (bunched by the network or a busy sender) goes out at
            # once, where that rule held it up to half an interval (17 ms at 30 fps). Counted in
            # fresh frames only: one that comes just after a repeat goes out at once.
            early = self._fresh_before + interval - now
            if early > 0:
                await asyncio.sleep(early)
        # Stalled: the primary sent nothing for STALL_INTERVALS frame intervals, or for twice
        # its own recent interval (a camera sending 10 fps is slow, not stalled: repeats of its
        # frames in between would only cost encodes, bits and jitter).
        patience = max(interval * STALL_INTERVALS, min(2 * self._primary_interval, MAX_PATIENCE_S))
        wait = interval if self._stalled else patience
        deadline = (self._last_emit if self._last_emit is not None else now) + wait
        primary = self.slots.get(self.primary)
        if primary is not None:
            fresh = await primary.wait_newer(self._primary_seen, max(0.0, deadline - loop.time()))
        else:
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            fresh = False
        if self.readyState != "live":
            raise MediaStreamError
        if fresh == self._stalled:
            logger.info(
                "primary input %s %s", self.primary, "is back" if fresh else "stalled: clock takes over"
            )
        self._stalled = not fresh
        frame = self.compose()
        self._last_emit = loop.time()
        if fresh:
            if self._last_fresh is not None:
                gap = min(self._last_emit - self._last_fresh, MAX_PATIENCE_S)
                self._primary_interval += (gap - self._primary_interval) / 8  # a smoothed cadence
            self._fresh_before, self._last_fresh = self._last_fresh, self._last_emit
        return frame

    # -- composing ---------------------------------------------------------

    def compose(self) -> av.VideoFrame:
        """Compose one output frame from the slots' current pictures (synchronous, no waiting)."""
        started = time.perf_counter()
        now = self._clock()
        shapes = tuple(
            (name, latest.frame.width, latest.frame.height)
            for name, slot in self.slots.items()
            if slot.present and (latest := slot.latest) is not None
        )
        key = (self._layout, self.agent_name is not None, shapes)
        if key != self._layout_key:  # the tiles follow from the key alone: computed when it changes
            self._layout_key, self._tiles = key, self._layout_tiles(shapes)
        canvas = self._outputs.take()
        self.painter.paint(canvas, self._tiles, key)
        output = canvas.array

        if self._fade_from is not None:
            alpha = (now - self._fade_start) / self.fade_s if self.fade_s > 0 else 1.0
            if alpha >= 1:
                self._fade_from = None
            else:
                # The first frames after a switch are mostly the old picture: no black flash.
                weight = max(alpha, 0.05)
                cv2.addWeighted(output, weight, self._fade_from, 1 - weight, 0, dst=output)
                canvas.forget()  # a blend, not the tiles: painted whole next time

        frame = av.VideoFrame.from_numpy_buffer(output, format="yuv420p")  # a view of ``output``, no copy
        primary = self.slots.get(self.primary)
        latest = primary.latest if primary is not None else None
        fresh = latest is not None and latest.version > self._primary_seen
        if latest is not None and fresh:
            self._primary_seen = latest.version
            self.receipt.record("slot_wait", (now - latest.arrived) * 1000)
            # yuv420p only: reading another format's stamp would cost a conversion per frame.
            if self.carry_stamp and latest.frame.format.name == "yuv420p":
                stamp = read_stamp(latest.frame)
                if stamp is not None:
                    canvas.save(Rect(0, 0, frame.width, strip_height(frame.width)))
                    write_stamp(frame, stamp)

        frame.pts = self._timeline.stamp(
            now, _source_time(latest.frame) if fresh and latest is not None else None
        )
        frame.time_base = VIDEO_TIME_BASE
        self.times.note(frame.pts, self.primary, latest.frame if fresh and latest is not None else None, now)
        self.frames += 1
        if self._stalled:
            self.clock_frames += 1
        self.receipt.record("compose", (time.perf_counter() - started) * 1000)
        return frame

    def _layout_tiles(self, shapes: tuple[tuple[str, int, int], ...]) -> list[Tile]:
        sources = {name: Size(width, height) for name, width, height in shapes}
        present = set(sources)
        if AGENT not in present and self.agent_name is not None:
            present.add(AGENT)  # the placeholder stands in
        tiles = compute_layout(self.size, self._layout, present, sources)
        if not tiles and self.agent_name is not None:
            # An avatar layout with no avatar yet: show the agent (or placeholder), never an empty frame.
            tiles = compute_layout(self.size, "agent", present, sources)
        return tiles


def _source_time(frame: av.VideoFrame) -> float | None:
    """When the source captured ``frame``, in seconds of its own clock (a decoded frame's pts
    is its RTP timestamp), if it says."""
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base)
