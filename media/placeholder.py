"""The tile shown while the agent's camera has no picture: initials on a disc, and the name."""

from __future__ import annotations

import zlib

import cv2
import numpy as np

# Disc colours (Y, U, V), picked by a stable hash of the name so an agent keeps theirs.
DISC_COLOURS = [(90, 170, 100), (110, 90, 170), (120, 170, 150), (100, 110, 90), (130, 80, 140)]
TILE_YUV = (40, 132, 126)


def initials(name: str) -> str:
    """Up to two initials: ``"Ada Lovelace"`` -> ``"AL"``, ``""`` -> ``"?"``."""
    words = [w for w in name.replace("-", " ").split() if w[:1].isalnum()]
    if not words:
        return "?"
    if len(words) == 1:
        return words[0][:1].upper()
    return (words[0][:1] + words[-1][:1]).upper()


def render_placeholder(name: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """yuv420p planes (Y, U, V) of a ``width`` x ``height`` placeholder tile for ``name``."""
    y = np.full((height, width), TILE_YUV[0], np.uint8)
    u = np.full((height // 2, width // 2), TILE_YUV[1], np.uint8)
    v = np.full((height // 2, width // 2), TILE_YUV[2], np.uint8)
    disc_y, disc_u, disc_v = DISC_COLOURS[zlib.crc32(name.encode()) % len(DISC_COLOURS)]
    radius = max(2, min(width, height) // 5)
    centre = (width // 2, height * 9 // 20)
    cv2.circle(y, centre, radius, disc_y, -1, cv2.LINE_AA)
    cv2.circle(u, (centre[0] // 2, centre[1] // 2), radius // 2, disc_u, -1, cv2.LINE_AA)
    cv2.circle(v, (centre[0] // 2, centre[1] // 2), radius // 2, disc_v, -1, cv2.LINE_AA)
    text = initials(name)
    scale = radius / 28
    thickness = max(1, int(radius / 12))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    cv2.putText(
        y,
        text,
        (centre[0] - tw // 2, centre[1] + th // 2),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        235,
        thickness,
        cv2.LINE_AA,
    )
    if name:
        label_scale = max(0.3, height / 720 * 1.1)
        (lw, lh), _ = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, label_scale, thickness)
        cv2.putText(
            y,
            name,
            ((width - lw) // 2, min(height - 4, centre[1] + radius + lh * 2)),
            cv2.FONT_HERSHEY_SIMPLEX,
            label_scale,
            220,
            thickness,
            cv2.LINE_AA,
        )
    return y, u, v
