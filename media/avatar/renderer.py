"""Draw the rig as an anti-aliased 2D character into yuv420p frames.

Cost model (720p, one core): everything that does not move (the backdrop or its
image, the shoulders and neck, the logo) is drawn ONCE into a static layer, kept
in BGR and in yuv420p. A frame is one copy of the static yuv420p buffer, the head
(and the waving hand) drawn in BGR into a small region copied from the static
layer, ONE colour conversion of that region, a cached caption patch, and the
safe zone copied back from the static layer last, so nothing ever covers it.
The shapes are :mod:`media.avatar.character`'s (drawn with sub-pixel precision and
``LINE_AA``, :mod:`media.avatar.drawing`), the captions :mod:`media.avatar.captions`'s.
"""

from __future__ import annotations

import math
import sys

import cv2
import numpy as np

from media.avatar.captions import CaptionPatches
from media.avatar.character import draw_body, draw_head
from media.avatar.drawing import Box, even_box
from media.avatar.rig import Rig
from media.avatar.spec import AvatarSpec, SafeZone

POOL_SIZE = 8


class AvatarRenderer:
    """Renders rig poses of one look (an :class:`AvatarSpec`) at one size.

    Args:
        spec: the look: colours, styles, images, safe zone.
        width, height: the frame size (even).

    :meth:`render` returns a contiguous yuv420p buffer of shape ``(height * 3 // 2, width)``
    (what ``av.VideoFrame.from_numpy_buffer(..., format="yuv420p")`` takes); buffers are
    pooled, so one is reused only once nothing else holds it.
    """

    def __init__(self, spec: AvatarSpec, width: int = 1280, height: int = 720) -> None:
        if width % 2 or height % 2:
            raise ValueError("yuv420p needs even sides")
        self.spec = spec
        self.width, self.height = width, height
        self.colors = spec.colors
        self._pool: list[np.ndarray] = []
        self.safe_box = self._safe_box(spec.safe_zone)
        self._place()
        self._static_bgr = self._draw_static()
        self._static_yuv = cv2.cvtColor(self._static_bgr, cv2.COLOR_BGR2YUV_I420)
        self._captions = CaptionPatches(self._static_bgr, self.safe_box, self.colors)

    # -- layout ------------------------------------------------------------

    def _safe_box(self, zone: SafeZone | None) -> Box | None:
        if zone is None:
            return None
        return Box(*zone.pixels(self.width, self.height))

    def _avatar_box(self, ax: float, ay: float, u: float) -> Box:
        """Everything the character can ever cover with its anchor (the neck's base) at ``ax, ay``."""
        return even_box(ax - 270 * u, ay - 420 * u, ax + 330 * u, self.height, self.width, self.height)

    def _place(self) -> None:
        """Anchor and scale: centred and large, moved (then shrunk) until it clears the safe zone."""
        w, h = self.width, self.height
        base = h / 720
        zone = self.safe_box
        margin = 12 * base
        for scale in np.arange(1.0, 0.39, -0.05):
            u = base * scale
            ay = h - 170 * u
            xs = [w / 2 + dx for dx in np.linspace(0, w / 2, 33) for dx in (dx, -dx)]
            for ax in xs:
                box = self._avatar_box(ax, ay, u)
                if box.x0 <= 0 and ax - 270 * u < 0 or box.x1 >= w and ax + 330 * u > w:
                    continue
                if zone is not None and box.overlaps(
                    Box(
                        int(zone.x0 - margin),
                        int(zone.y0 - margin),
                        int(zone.x1 + margin),
                        int(zone.y1 + margin),
                    )
                ):
                    continue
                self.anchor, self.unit = (float(ax), float(ay)), float(u)
                return
        # A zone that leaves no room at all (a huge safe zone): draw small; the zone still wins.
        self.anchor, self.unit = (w / 2, h - 60 * base), 0.4 * base

    # -- the static layer --------------------------------------------------

    def _draw_static(self) -> np.ndarray:
        w, h = self.width, self.height
        c = self.colors
        image = self.spec.background_image
        if image is not None:
            scale = max(w / image.shape[1], h / image.shape[0])
            resized = cv2.resize(
                image[:, :, :3],
                (math.ceil(image.shape[1] * scale), math.ceil(image.shape[0] * scale)),
                interpolation=cv2.INTER_AREA,
            )
            y0, x0 = (resized.shape[0] - h) // 2, (resized.shape[1] - w) // 2
            bgr = np.ascontiguousarray(resized[y0 : y0 + h, x0 : x0 + w])
        else:
            # A soft vertical gradient with a light spot behind the head.
            t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
            top, bottom = np.array(c["background_accent"], np.float32), np.array(c["background"], np.float32)
            column = top * (1 - t) * 0.6 + bottom * (0.4 + 0.6 * t)
            bgr = np.repeat(column, w, axis=1)
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            ax, ay = self.anchor
            u = self.unit
            spot = np.exp(-(((xx - ax) / (330 * u)) ** 2 + ((yy - (ay - 220 * u)) / (300 * u)) ** 2))
            bgr = np.clip(bgr + spot[:, :, None] * 28, 0, 255).astype(np.uint8)
        draw_body(bgr, self.spec, self.anchor, self.unit)
        self._draw_logo(bgr)
        return bgr

    def _draw_logo(self, img: np.ndarray) -> None:
        logo, box = self.spec.logo_image, self.safe_box
        if logo is None or box is None:
            return
        scale = min(box.width / logo.shape[1], box.height / logo.shape[0])
        lw, lh = max(1, int(logo.shape[1] * scale)), max(1, int(logo.shape[0] * scale))
        resized = cv2.resize(logo, (lw, lh), interpolation=cv2.INTER_AREA)
        x0, y0 = box.x0 + (box.width - lw) // 2, box.y0 + (box.height - lh) // 2
        region = img[y0 : y0 + lh, x0 : x0 + lw]
        if resized.shape[2] == 4:
            alpha = resized[:, :, 3:4].astype(np.float32) / 255
            region[:] = (resized[:, :, :3] * alpha + region * (1 - alpha)).astype(np.uint8)
        else:
            region[:] = resized

    # -- per frame ---------------------------------------------------------

    def head_box(self, rig: Rig) -> Box:
        """The region a frame redraws for ``rig``: the head's reach, and the hand while it is up."""
        ax, ay = self.anchor
        u = self.unit
        box = even_box(ax - 200 * u, ay - 420 * u, ax + 200 * u, ay - 20 * u, self.width, self.height)
        if rig.hand > 0.02:
            box = box.union(
                even_box(ax + 120 * u, ay - 330 * u, ax + 330 * u, self.height, self.width, self.height)
            )
        return box

    def render(self, rig: Rig, caption: str | None = None) -> np.ndarray:
        """One yuv420p frame (a ``(h * 3 // 2, w)`` uint8 buffer) of ``rig``, with ``caption`` if any."""
        rig = rig.clamped()
        out = self._free_buffer()
        np.copyto(out, self._static_yuv)
        box = self.head_box(rig)
        region = self._static_bgr[box.y0 : box.y1, box.x0 : box.x1].copy()
        draw_head(region, self.spec, rig, (self.anchor[0] - box.x0, self.anchor[1] - box.y0), self.unit)
        self._paste(out, box, cv2.cvtColor(region, cv2.COLOR_BGR2YUV_I420))
        if caption:
            patch = self._captions.patch(caption)
            if patch is not None:
                self._paste(out, *patch)
        if self.safe_box is not None:
            self._paste_static(out, self.safe_box)
        return out

    def render_bgr(self, rig: Rig, caption: str | None = None) -> np.ndarray:
        """:meth:`render` converted to BGR (for tests and previews; costs one more conversion)."""
        return cv2.cvtColor(self.render(rig, caption), cv2.COLOR_YUV2BGR_I420)

    def _free_buffer(self) -> np.ndarray:
        for buffer in self._pool:
            # The pool, the loop variable and getrefcount's argument: more means a frame still uses it.
            if sys.getrefcount(buffer) <= 3:
                return buffer
        buffer = np.empty_like(self._static_yuv)
        if len(self._pool) < POOL_SIZE:
            self._pool.append(buffer)
        return buffer

    def _planes(
        self, buffer: np.ndarray, width: int, height: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        flat = buffer.reshape(-1)
        y = flat[: width * height].reshape(height, width)
        u = flat[width * height : width * height * 5 // 4].reshape(height // 2, width // 2)
        v = flat[width * height * 5 // 4 :].reshape(height // 2, width // 2)
        return y, u, v

    def _paste(self, out: np.ndarray, box: Box, i420: np.ndarray) -> None:
        oy, ou, ov = self._planes(out, self.width, self.height)
        py, pu, pv = self._planes(i420, box.width, box.height)
        oy[box.y0 : box.y1, box.x0 : box.x1] = py
        ou[box.y0 // 2 : box.y1 // 2, box.x0 // 2 : box.x1 // 2] = pu
        ov[box.y0 // 2 : box.y1 // 2, box.x0 // 2 : box.x1 // 2] = pv

    def _paste_static(self, out: np.ndarray, box: Box) -> None:
        oy, ou, ov = self._planes(out, self.width, self.height)
        sy, su, sv = self._planes(self._static_yuv, self.width, self.height)
        oy[box.y0 : box.y1, box.x0 : box.x1] = sy[box.y0 : box.y1, box.x0 : box.x1]
        cy, cx = slice(box.y0 // 2, box.y1 // 2), slice(box.x0 // 2, box.x1 // 2)
        ou[cy, cx] = su[cy, cx]
        ov[cy, cx] = sv[cy, cx]

    # -- captions ----------------------------------------------------------

    def caption_box(self, text: str) -> Box | None:
        """Where ``text``'s caption goes (clear of the safe zone), or ``None`` if it has no room."""
        patch = self._captions.patch(text)
        return patch[0] if patch is not None else None
