"""Synthetic video sources, so everything runs with no camera and no screen.

Both are aiortc ``MediaStreamTrack`` objects producing yuv420p frames, paced by
their own clock (or unpaced, as fast as they are read, for benchmarks), and
optionally stamped with their capture time (see :mod:`media.stamp`). Each frame
is a fresh ``av.VideoFrame``: the static background is drawn once and copied,
only the moving parts are drawn per frame.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable

import av
import cv2
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.stamp import Stamp, write_stamp

VIDEO_CLOCK_RATE = 90000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)

# Y, U, V of the colour bars (BT.601 limited range): white, yellow, cyan, green, magenta, red, blue.
BARS_YUV = [
    (235, 128, 128),
    (210, 16, 146),
    (170, 166, 16),
    (145, 54, 34),
    (106, 202, 222),
    (81, 90, 240),
    (41, 240, 110),
]


def _rgb_to_yuv(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = rgb
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return round(y), round(u), round(v)


class SyntheticVideoTrack(MediaStreamTrack):
    """Base of the synthetic sources: pacing, timestamps, stamping and plane buffers.

    Args:
        width, height: frame size (even).
        fps: frames per second of the pacing clock.
        paced: wait for each frame's time (a live source); ``False`` returns frames
            as fast as ``recv`` is called (benchmarks).
        stamp: write the capture time and frame index into each frame.
        clock: wall-clock seconds for the stamp, injectable for tests.
    """

    kind = "video"

    def __init__(
        self,
        width: int = 1280,
        height: int = 720,
        fps: float = 30.0,
        *,
        paced: bool = True,
        stamp: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        if width % 2 or height % 2:
            raise ValueError("yuv420p needs even sides")
        self.width, self.height, self.fps = width, height, fps
        self.paced = paced
        self.stamp = stamp
        self._clock = clock
        self.frames = 0
        self._start: float | None = None
        self._y = np.zeros((height, width), np.uint8)
        self._u = np.full((height // 2, width // 2), 128, np.uint8)
        self._v = np.full((height // 2, width // 2), 128, np.uint8)

    def draw(self, index: int, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        """Draw frame ``index`` into fresh copies of the background planes."""
        raise NotImplementedError

    async def recv(self) -> av.VideoFrame:
        """The next frame, at its time when paced."""
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        if self.paced:
            due = self._start + self.frames / self.fps
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -2 / self.fps:
                # Far behind (a stalled loop): resynchronise rather than burst frames out.
                self._start = loop.time() - self.frames / self.fps
        else:
            await asyncio.sleep(0)  # unpaced still yields, so a reader loop cannot starve the event loop
        index = self.frames
        self.frames += 1
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        y, u, v = (
            np.frombuffer(p, np.uint8).reshape(h, p.line_size)[:, :w]
            for p, h, w in zip(
                frame.planes,
                (self.height, self.height // 2, self.height // 2),
                (self.width, self.width // 2, self.width // 2),
                strict=True,
            )
        )
        y[:] = self._y
        u[:] = self._u
        v[:] = self._v
        self.draw(index, y, u, v)
        if self.stamp:
            write_stamp(frame, Stamp.now(index, self._clock()))
        frame.pts = round(index / self.fps * VIDEO_CLOCK_RATE)
        frame.time_base = VIDEO_TIME_BASE
        return frame


class TestCardTrack(SyntheticVideoTrack):
    """A moving test card: colour bars, a box sweeping across, a frame counter and a clock.

    Args:
        label: text drawn on the card (a name, "agent", "avatar").
        tint: an RGB colour for the lower band, to tell several cards apart by pixels.
        Other arguments as :class:`SyntheticVideoTrack`.
    """

    __test__ = False  # not a pytest class, despite the name

    def __init__(
        self, *args, label: str = "test card", tint: tuple[int, int, int] = (40, 40, 160), **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.label = label
        self.tint = _rgb_to_yuv(tint)
        h, w = self.height, self.width
        band = h * 2 // 3 // 2 * 2
        for i, (yy, uu, vv) in enumerate(BARS_YUV):
            x0, x1 = w * i // 7 // 2 * 2, w * (i + 1) // 7 // 2 * 2
            self._y[:band, x0:x1] = yy
            self._u[: band // 2, x0 // 2 : x1 // 2] = uu
            self._v[: band // 2, x0 // 2 : x1 // 2] = vv
        self._y[band:], self._u[band // 2 :], self._v[band // 2 :] = self.tint
        self._band = band
        scale = h / 360
        cv2.putText(
            self._y,
            label,
            (int(20 * scale), h - int(20 * scale)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            235,
            max(1, int(2 * scale)),
            cv2.LINE_AA,
        )

    def draw(self, index: int, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        h, w = self.height, self.width
        side = h // 6 // 2 * 2
        travel = max(2, w - side)
        x = int(index * 8 * w / 1280) % (2 * travel)
        x = (x if x < travel else 2 * travel - x) // 2 * 2
        top = (self._band - side) // 2 // 2 * 2
        y[top : top + side, x : x + side] = 235
        u[top // 2 : (top + side) // 2, x // 2 : (x + side) // 2] = 128
        v[top // 2 : (top + side) // 2, x // 2 : (x + side) // 2] = 128
        scale = h / 360
        text = f"{index:06d} {time.strftime('%H:%M:%S')}"
        cv2.putText(
            y,
            text,
            (w // 2, h - int(20 * scale)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale * 0.8,
            235,
            max(1, int(2 * scale)),
            cv2.LINE_AA,
        )


class ScreenTrack(SyntheticVideoTrack):
    """A fake shared screen: a light page with lines of text and a moving pointer, 5 fps by default.

    Args:
        title: the first line of text.
        Other arguments as :class:`SyntheticVideoTrack`.
    """

    def __init__(
        self,
        width: int = 1280,
        height: int = 720,
        fps: float = 5.0,
        *,
        title: str = "Shared screen",
        **kwargs,
    ) -> None:
        super().__init__(width, height, fps, **kwargs)
        self._y[:] = 225
        scale = height / 720
        cv2.putText(
            self._y,
            title,
            (int(40 * scale), int(80 * scale)),
            cv2.FONT_HERSHEY_SIMPLEX,
            1.4 * scale,
            30,
            max(1, int(3 * scale)),
            cv2.LINE_AA,
        )
        for row in range(8):
            top = int((130 + row * 60) * scale)
            text = f"{row + 1}. Order #{48213 + row * 17}  status: shipped  total: {19 + row * 7}.99 EUR"
            cv2.putText(
                self._y,
                text,
                (int(40 * scale), top),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.8 * scale,
                60,
                max(1, int(2 * scale)),
                cv2.LINE_AA,
            )
        # A blue title bar, in chroma too.
        bar = int(24 * scale) // 2 * 2
        self._y[:bar] = 80
        self._u[: bar // 2] = 190
        self._v[: bar // 2] = 100

    def draw(self, index: int, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        h, w = self.height, self.width
        t = index / max(self.fps, 1)
        px = int(w * (0.5 + 0.4 * np.cos(t)))
        py = int(h * (0.5 + 0.35 * np.sin(1.3 * t)))
        size = max(8, h // 30)
        pointer = np.array([[px, py], [px, py + 2 * size], [px + size, py + int(1.5 * size)]], np.int32)
        cv2.fillPoly(y, [pointer], 0, cv2.LINE_AA)
