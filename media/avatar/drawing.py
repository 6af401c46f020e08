"""Pixel boxes with even corners (yuv420p chroma is 2x2) and sub-pixel drawing for OpenCV.

Shapes are drawn with sub-pixel precision (``SHIFT`` fractional bits) and ``LINE_AA``, so slow
movements glide instead of stepping pixel by pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

SHIFT = 4
ONE = 1 << SHIFT
AA = cv2.LINE_AA


@dataclass(frozen=True, slots=True)
class Box:
    """A pixel rectangle ``[x0, x1) x [y0, y1)`` with even corners (yuv420p chroma is 2x2)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def overlaps(self, other: Box) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1

    def union(self, other: Box) -> Box:
        return Box(
            min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1)
        )


def even_box(x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> Box:
    return Box(
        max(0, int(x0) // 2 * 2),
        max(0, int(y0) // 2 * 2),
        min(width, (int(math.ceil(x1)) + 1) // 2 * 2),
        min(height, (int(math.ceil(y1)) + 1) // 2 * 2),
    )


def subpixel(points: np.ndarray) -> np.ndarray:
    return np.round(points * ONE).astype(np.int32)


def subpixel_point(point: np.ndarray) -> tuple[int, int]:
    x, y = subpixel(np.asarray(point, np.float64))
    return int(x), int(y)
