"""Draw the rig as an anti-aliased 2D character into yuv420p frames.

Cost model (720p, one core): everything that does not move (the backdrop or its
image, the shoulders and neck, the logo) is drawn ONCE into a static layer, kept
in BGR and in yuv420p. A frame is one copy of the static yuv420p buffer, the head
(and the waving hand) drawn in BGR into a small region copied from the static
layer, ONE colour conversion of that region, a cached caption patch, and the
safe zone copied back from the static layer last, so nothing ever covers it.
Shapes are drawn with sub-pixel precision (``shift``) and ``LINE_AA``, so slow
movements glide instead of stepping pixel by pixel.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import cv2
import numpy as np

from media.avatar.rig import Rig
from media.avatar.spec import AvatarSpec, SafeZone

SHIFT = 4
ONE = 1 << SHIFT
AA = cv2.LINE_AA
POOL_SIZE = 8
CAPTION_FONT = cv2.FONT_HERSHEY_DUPLEX
CAPTION_CACHE = 16


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


def _even_box(x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> Box:
    return Box(
        max(0, int(x0) // 2 * 2),
        max(0, int(y0) // 2 * 2),
        min(width, (int(math.ceil(x1)) + 1) // 2 * 2),
        min(height, (int(math.ceil(y1)) + 1) // 2 * 2),
    )


def _fx(points: np.ndarray) -> np.ndarray:
    return np.round(points * ONE).astype(np.int32)


def _pt(point: np.ndarray) -> tuple[int, int]:
    x, y = _fx(np.asarray(point, np.float64))
    return int(x), int(y)


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
        self._captions: dict[str, tuple[Box, np.ndarray] | None] = {}
        self.safe_box = self._safe_box(spec.safe_zone)
        self._place()
        self._static_bgr = self._draw_static()
        self._static_yuv = cv2.cvtColor(self._static_bgr, cv2.COLOR_BGR2YUV_I420)

    # -- layout ------------------------------------------------------------

    def _safe_box(self, zone: SafeZone | None) -> Box | None:
        if zone is None:
            return None
        return Box(*zone.pixels(self.width, self.height))

    def _avatar_box(self, ax: float, ay: float, u: float) -> Box:
        """Everything the character can ever cover with its anchor (the neck's base) at ``ax, ay``."""
        return _even_box(ax - 270 * u, ay - 420 * u, ax + 330 * u, self.height, self.width, self.height)

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
        self._draw_body(bgr)
        self._draw_logo(bgr)
        return bgr

    def _draw_body(self, img: np.ndarray) -> None:
        c, u = self.colors, self.unit
        ax, ay = self.anchor
        h = self.height
        # Neck, then shoulders over its base.
        neck = np.array(
            [
                [ax - 34 * u, ay - 95 * u],
                [ax + 34 * u, ay - 95 * u],
                [ax + 40 * u, ay + 10 * u],
                [ax - 40 * u, ay + 10 * u],
            ]
        )
        cv2.fillPoly(img, [_fx(neck)], c["skin_shadow"], AA, SHIFT)
        cv2.ellipse(
            img, _pt((ax, ay + 150 * u)), _pt((235 * u, 170 * u)), 0, 0, 360, c["outfit"], -1, AA, SHIFT
        )
        if h - (ay + 150 * u) > 0:
            body = np.array(
                [
                    [ax - 235 * u, ay + 150 * u],
                    [ax + 235 * u, ay + 150 * u],
                    [ax + 235 * u, h + 2],
                    [ax - 235 * u, h + 2],
                ]
            )
            cv2.fillPoly(img, [_fx(body)], c["outfit"], AA, SHIFT)
        accent = c["outfit_accent"]
        if self.spec.outfit == "crew":
            cv2.ellipse(
                img,
                _pt((ax, ay - 8 * u)),
                _pt((58 * u, 30 * u)),
                0,
                0,
                180,
                accent,
                max(2, round(9 * u)),
                AA,
                SHIFT,
            )
        elif self.spec.outfit == "collar":
            for side in (-1, 1):
                collar = np.array(
                    [[ax, ay + 22 * u], [ax + side * 62 * u, ay - 18 * u], [ax + side * 74 * u, ay + 40 * u]]
                )
                cv2.fillPoly(img, [_fx(collar)], accent, AA, SHIFT)
        else:  # blazer: a shirt in the V, lapels
            shirt = np.array([[ax - 50 * u, ay - 12 * u], [ax + 50 * u, ay - 12 * u], [ax, ay + 150 * u]])
            cv2.fillPoly(img, [_fx(shirt)], accent, AA, SHIFT)
            for side in (-1, 1):
                lapel = np.array(
                    [
                        [ax + side * 50 * u, ay - 14 * u],
                        [ax + side * 92 * u, ay + 20 * u],
                        [ax + side * 16 * u, ay + 150 * u],
                    ]
                )
                cv2.fillPoly(img, [_fx(lapel)], tuple(int(v * 0.8) for v in c["outfit"]), AA, SHIFT)

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
        box = _even_box(ax - 200 * u, ay - 420 * u, ax + 200 * u, ay - 20 * u, self.width, self.height)
        if rig.hand > 0.02:
            box = box.union(
                _even_box(ax + 120 * u, ay - 330 * u, ax + 330 * u, self.height, self.width, self.height)
            )
        return box

    def render(self, rig: Rig, caption: str | None = None) -> np.ndarray:
        """One yuv420p frame (a ``(h * 3 // 2, w)`` uint8 buffer) of ``rig``, with ``caption`` if any."""
        rig = rig.clamped()
        out = self._free_buffer()
        np.copyto(out, self._static_yuv)
        box = self.head_box(rig)
        region = self._static_bgr[box.y0 : box.y1, box.x0 : box.x1].copy()
        self._draw_dynamic(region, rig, box)
        self._paste(out, box, cv2.cvtColor(region, cv2.COLOR_BGR2YUV_I420))
        if caption:
            patch = self._caption(caption)
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
        patch = self._caption(text)
        return patch[0] if patch is not None else None

    def _caption(self, text: str) -> tuple[Box, np.ndarray] | None:
        if text in self._captions:
            return self._captions[text]
        if len(self._captions) >= CAPTION_CACHE:
            self._captions.pop(next(iter(self._captions)))
        patch = self._draw_caption(text)
        self._captions[text] = patch
        return patch

    def _caption_span(self, y0: int, y1: int) -> tuple[int, int]:
        """The widest horizontal span of the frame, within rows ``y0..y1``, clear of the safe zone."""
        margin = self.width // 32
        spans = [(margin, self.width - margin)]
        zone = self.safe_box
        if zone is not None and zone.y0 < y1 and y0 < zone.y1:
            spans = [(margin, zone.x0 - margin), (zone.x1 + margin, self.width - margin)]
        return max(spans, key=lambda s: s[1] - s[0])

    def _draw_caption(self, text: str) -> tuple[Box, np.ndarray] | None:
        h = self.height
        scale = 0.9 * h / 720
        thick = max(1, round(2 * h / 720))
        line_h = int(cv2.getTextSize("Ag", CAPTION_FONT, scale, thick)[0][1] * 1.9)
        pad = int(16 * h / 720)
        bottom = h - int(26 * h / 720)
        lines: list[str] = []
        for _ in range(2):
            top = bottom - line_h * max(1, len(lines)) - 2 * pad
            x0, x1 = self._caption_span(top, bottom)
            lines = _wrap(text, x1 - x0 - 2 * pad, scale, thick)
        lines = lines[-3:]  # long text: the last three lines, as subtitles do
        top = bottom - line_h * len(lines) - 2 * pad
        x0, x1 = self._caption_span(top, bottom)
        if x1 - x0 < 4 * pad:
            return None
        widest = max(cv2.getTextSize(line, CAPTION_FONT, scale, thick)[0][0] for line in lines)
        box_w = min(x1 - x0, widest + 2 * pad)
        left = (x0 + x1 - box_w) // 2
        box = _even_box(left, top, left + box_w, bottom, self.width, self.height)
        region = self._static_bgr[box.y0 : box.y1, box.x0 : box.x1].copy()
        panel = np.empty_like(region)
        panel[:] = self.colors["caption_background"]
        cv2.addWeighted(panel, 0.82, region, 0.18, 0, dst=region)
        for i, line in enumerate(lines):
            tw = cv2.getTextSize(line, CAPTION_FONT, scale, thick)[0][0]
            org = ((box.width - tw) // 2, pad + int(line_h * (i + 0.72)))
            cv2.putText(region, line, org, CAPTION_FONT, scale, self.colors["caption_text"], thick, AA)
        return box, cv2.cvtColor(region, cv2.COLOR_BGR2YUV_I420)

    # -- the head ----------------------------------------------------------

    def _draw_dynamic(self, img: np.ndarray, rig: Rig, box: Box) -> None:
        c, u = self.colors, self.unit
        ax, ay = self.anchor[0] - box.x0, self.anchor[1] - box.y0
        if rig.hand > 0.02:
            self._draw_hand(img, rig, ax, ay)
        s = math.sin(math.radians(rig.yaw))
        p = math.sin(math.radians(rig.pitch))
        roll = rig.roll
        # Head centre in the region; the head turns about the neck.
        hx = ax + s * 12 * u
        hy = ay - 215 * u + p * 10 * u
        pivot = np.array([ax, ay - 60 * u])
        rot = math.radians(roll)
        cos_r, sin_r = math.cos(rot), math.sin(rot)

        def pt(points: np.ndarray) -> np.ndarray:
            """Head-local points (units of u, origin the head centre) -> region pixels, rolled."""
            q = np.asarray(points, np.float64) * u + (hx, hy) - pivot
            x = q[..., 0] * cos_r - q[..., 1] * sin_r
            y = q[..., 0] * sin_r + q[..., 1] * cos_r
            return np.stack([x, y], axis=-1) + pivot

        def ellipse(center, axes, color, thickness=-1, angle=0.0, start=0, end=360) -> None:
            width = -1 if thickness < 0 else max(1, round(thickness * u))
            cv2.ellipse(
                img,
                _pt(pt(center)),
                _pt(np.maximum(np.asarray(axes) * u, 0.3)),
                angle + roll,
                start,
                end,
                color,
                width,
                AA,
                SHIFT,
            )

        def poly(points, color) -> None:
            cv2.fillPoly(img, [_fx(pt(points))], color, AA, SHIFT)

        def line(points, color, thickness: float) -> None:
            cv2.polylines(img, [_fx(pt(points))], False, color, max(1, round(thickness * u)), AA, SHIFT)

        fx = s * 58  # features ride on the front of the head: they move more than its outline
        fy = p * 40
        hair = self.spec.hair
        # Hair behind the head.
        if hair in ("bob", "long"):
            ellipse((s * 4, -6), (126, 148), c["hair"])
            if hair == "long":
                poly(np.array([[-124, -10], [124, -10], [132, 190], [-132, 190]]), c["hair"])
            else:
                poly(np.array([[-126, -6], [126, -6], [118, 95], [-118, 95]]), c["hair"])
        elif hair == "bun":
            ellipse((s * 6, -150), (48, 42), c["hair"])
            ellipse((s * 4, -22), (112, 128), c["hair"])
        # Ears: the one the face turns away from shows more.
        for side in (-1, 1):
            grow = 1 - 0.5 * s * side
            ellipse((side * (97 - 6 * s * side) + s * 6, 8 + fy * 0.3), (15 * grow, 25), c["skin_shadow"])
        # Face: skull and jaw.
        ellipse((s * 8, -12), (100, 118), c["skin"])
        ellipse((s * 14, 28 + fy * 0.2), (86 - 6 * abs(s), 100), c["skin"])
        # Hair in front: the top of the skull down to a wavy fringe that moves with the face.
        top = [
            (s * 8 + 106 * math.cos(a), -14 + 130 * math.sin(a))
            for a in np.linspace(math.pi * 1.02, math.pi * 1.98, 18)
        ]
        if hair == "short":
            fringe = [(x + fx * 0.3, -78 - 6 * abs(math.sin(x / 18))) for x in np.linspace(104, -104, 12)]
        else:
            fringe = [
                (x + fx * 0.3, -66 - 16 * abs(math.sin(x / 26 + 0.6))) for x in np.linspace(104, -104, 14)
            ]
        poly(np.array(top + fringe), c["hair"])
        # Brows.
        raise_ = rig.brows * 11
        for side in (-1, 1):
            x0 = side * 36 * (1 - 0.22 * s * side) + fx
            inner_drop = -min(rig.brows, 0) * 7  # a frown pulls the inner ends down
            line(
                np.array(
                    [
                        [x0 - side * 22, -47 - raise_ + inner_drop],
                        [x0, -54 - raise_ * 1.15],
                        [x0 + side * 22, -49 - raise_],
                    ]
                )
                + (0, fy),
                c["brows"],
                6.5,
            )
        # Eyes.
        for side, openness in ((-1, rig.eye_l), (1, rig.eye_r)):
            narrow = 1 - 0.3 * s * side
            ex, ey = side * 37 * (1 - 0.22 * s * side) + fx, -20 + fy
            rx, ry = 19 * narrow, 12.5 * openness
            if openness > 0.12:
                ellipse((ex, ey), (rx, ry), (250, 250, 250))
                gx = ex + rig.gaze_x * 8 * narrow + s * 3
                gy = ey + rig.gaze_y * 4.5
                iris_ry = min(9.5, ry * 0.92)
                ellipse((gx, gy), (9.5 * narrow, iris_ry), c["eyes"])
                ellipse((gx, gy), (4.5 * narrow, min(4.5, iris_ry)), (20, 20, 20))
                ellipse((gx + 3, gy - 3), (2, min(2, iris_ry / 2)), (255, 255, 255))
                ellipse((ex, ey), (rx, ry), (30, 24, 22), 3, start=180, end=360)
            else:
                ellipse((ex, ey + 2), (rx, 5), (30, 24, 22), 3, start=20, end=160)
        # Nose.
        line(
            np.array([[fx * 1.15 + 2, -6 + fy], [fx * 1.25 + 6, 20 + fy], [fx * 1.2 - 5, 25 + fy]]),
            c["skin_shadow"],
            3.5,
        )
        self._draw_mouth(rig, fx, fy, line, poly)

    def _draw_mouth(self, rig: Rig, fx: float, fy: float, line, poly) -> None:
        c = self.colors
        half = 30 * (1 + 0.22 * rig.mouth_wide + 0.14 * max(rig.smile, 0))
        mx, my = fx * 1.05, 58 + fy * 0.8
        xs = np.linspace(-1, 1, 15)
        lift = rig.smile * 9  # corners up with a smile, down with a frown
        upper = np.stack([mx + xs * half, my - lift * xs**2], axis=1)
        opening = rig.mouth_open * 40
        if opening < 2.5:
            line(upper, c["lips"], 4.5)
            return
        lower = np.stack([mx + xs * half, my - lift * xs**2 + opening * (1 - xs**2) ** 0.8], axis=1)
        poly(np.concatenate([upper, lower[::-1]]), c["mouth"])
        teeth = min(7.0, opening * 0.3)
        poly(np.concatenate([upper[2:-2], (upper[2:-2] + (0, teeth))[::-1]]), (236, 240, 244))
        line(np.concatenate([upper, lower[::-1], upper[:1]]), c["lips"], 4.5)

    def _draw_hand(self, img: np.ndarray, rig: Rig, ax: float, ay: float) -> None:
        c, u = self.colors, self.unit
        raise_ = rig.hand
        shoulder = np.array([ax + 165 * u, ay + 60 * u])
        hand = np.array([ax + 220 * u, ay + (150 - 360 * raise_) * u])
        cv2.line(img, _pt(shoulder), _pt(hand + (0, 40 * u)), c["outfit"], max(2, round(46 * u)), AA, SHIFT)
        angle = rig.hand_tilt * 22
        rot = math.radians(angle)
        for i, dx in enumerate((-21, -7, 7, 21)):
            length = (52, 60, 58, 48)[i]
            tip = hand + np.array([dx + math.sin(rot) * length, -math.cos(rot) * length]) * u
            base = hand + np.array([dx * 0.8, -10]) * u
            cv2.line(img, _pt(base), _pt(tip), c["skin"], max(2, round(13 * u)), AA, SHIFT)
        thumb = hand + np.array([-40 + math.sin(rot) * 8, -2]) * u
        cv2.line(img, _pt(hand + (-18 * u, 12 * u)), _pt(thumb), c["skin"], max(2, round(14 * u)), AA, SHIFT)
        cv2.ellipse(img, _pt(hand), _pt((30 * u, 34 * u)), angle, 0, 360, c["skin"], -1, AA, SHIFT)


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
