"""Captions: the text being said, wrapped on a panel at the bottom, clear of the safe zone."""

from __future__ import annotations

import cv2
import numpy as np

from media.avatar.drawing import AA, Box, even_box

CAPTION_FONT = cv2.FONT_HERSHEY_DUPLEX
CAPTION_CACHE = 16


class CaptionPatches:
    """Caption patches drawn over ``static_bgr`` (the frame's static layer), the last few cached."""

    def __init__(self, static_bgr: np.ndarray, safe_box: Box | None, colors: dict) -> None:
        self.height, self.width = static_bgr.shape[:2]
        self.safe_box = safe_box
        self.colors = colors
        self._static_bgr = static_bgr
        self._patches: dict[str, tuple[Box, np.ndarray] | None] = {}

    def patch(self, text: str) -> tuple[Box, np.ndarray] | None:
        """The caption for ``text``: its box and its yuv420p pixels, or ``None`` if it has no room."""
        if text in self._patches:
            return self._patches[text]
        if len(self._patches) >= CAPTION_CACHE:
            self._patches.pop(next(iter(self._patches)))
        patch = self._draw(text)
        self._patches[text] = patch
        return patch

    def _span(self, y0: int, y1: int) -> tuple[int, int]:
        """The widest horizontal span of the frame, within rows ``y0..y1``, clear of the safe zone."""
        margin = self.width // 32
        spans = [(margin, self.width - margin)]
        zone = self.safe_box
        if zone is not None and zone.y0 < y1 and y0 < zone.y1:
            spans = [(margin, zone.x0 - margin), (zone.x1 + margin, self.width - margin)]
        return max(spans, key=lambda s: s[1] - s[0])

    def _draw(self, text: str) -> tuple[Box, np.ndarray] | None:
        h = self.height
        scale = 0.9 * h / 720
        thick = max(1, round(2 * h / 720))
        line_h = int(cv2.getTextSize("Ag", CAPTION_FONT, scale, thick)[0][1] * 1.9)
        pad = int(16 * h / 720)
        bottom = h - int(26 * h / 720)
        lines: list[str] = []
        for _ in range(2):
            top = bottom - line_h * max(1, len(lines)) - 2 * pad
            x0, x1 = self._span(top, bottom)
            lines = _wrap(text, x1 - x0 - 2 * pad, scale, thick)
        lines = lines[-3:]  # long text: the last three lines, as subtitles do
        top = bottom - line_h * len(lines) - 2 * pad
        x0, x1 = self._span(top, bottom)
        if x1 - x0 < 4 * pad:
            return None
        widest = max(cv2.getTextSize(line, CAPTION_FONT, scale, thick)[0][0] for line in lines)
        box_w = min(x1 - x0, widest + 2 * pad)
        left = (x0 + x1 - box_w) // 2
        box = even_box(left, top, left + box_w, bottom, self.width, self.height)
        region = self._static_bgr[box.y0 : box.y1, box.x0 : box.x1].copy()
        panel = np.empty_like(region)
        panel[:] = self.colors["caption_background"]
        cv2.addWeighted(panel, 0.82, region, 0.18, 0, dst=region)
        for i, line in enumerate(lines):
            tw = cv2.getTextSize(line, CAPTION_FONT, scale, thick)[0][0]
            org = ((box.width - tw) // 2, pad + int(line_h * (i + 0.72)))
            cv2.putText(region, line, org, CAPTION_FONT, scale, self.colors["caption_text"], thick, AA)
        return box, cv2.cvtColor(region, cv2.COLOR_BGR2YUV_I420)


def _wrap(text: str, max_width: int, scale: float, thickness: int) -> list[str]:
    """Greedy word wrap to ``max_width`` pixels; a word longer than a line is cut."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if cv2.getTextSize(candidate, CAPTION_FONT, scale, thickness)[0][0] <= max_width or not current:
            current = candidate
        else:
            lines.append(current)
            current = word
        while cv2.getTextSize(current, CAPTION_FONT, scale, thickness)[0][0] > max_width and len(current) > 1:
            cut = max(
                1,
                len(current)
                * max_width
                // max(1, cv2.getTextSize(current, CAPTION_FONT, scale, thickness)[0][0]),
            )
            lines.append(current[:cut])
            current = current[cut:]
    if current:
        lines.append(current)
    return lines or [""]
