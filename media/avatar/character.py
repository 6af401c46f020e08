"""The character's shapes: body and outfit (drawn once), head, face and waving hand (every frame).

All sizes are in units of ``unit`` pixels around ``anchor``, the neck's base.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from media.avatar.drawing import AA, SHIFT, subpixel, subpixel_point
from media.avatar.rig import Rig
from media.avatar.spec import AvatarSpec


def draw_body(img: np.ndarray, spec: AvatarSpec, anchor: tuple[float, float], unit: float) -> None:
    """The neck, shoulders and outfit, into the full frame ``img`` (they never move)."""
    c, u = spec.colors, unit
    ax, ay = anchor
    h = img.shape[0]
    # Neck, then shoulders over its base.
    neck = np.array(
        [
            [ax - 34 * u, ay - 95 * u],
            [ax + 34 * u, ay - 95 * u],
            [ax + 40 * u, ay + 10 * u],
            [ax - 40 * u, ay + 10 * u],
        ]
    )
    cv2.fillPoly(img, [subpixel(neck)], c["skin_shadow"], AA, SHIFT)
    cv2.ellipse(
        img,
        subpixel_point((ax, ay + 150 * u)),
        subpixel_point((235 * u, 170 * u)),
        0,
        0,
        360,
        c["outfit"],
        -1,
        AA,
        SHIFT,
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
        cv2.fillPoly(img, [subpixel(body)], c["outfit"], AA, SHIFT)
    accent = c["outfit_accent"]
    if spec.outfit == "crew":
        cv2.ellipse(
            img,
            subpixel_point((ax, ay - 8 * u)),
            subpixel_point((58 * u, 30 * u)),
            0,
            0,
            180,
            accent,
            max(2, round(9 * u)),
            AA,
            SHIFT,
        )
    elif spec.outfit == "collar":
        for side in (-1, 1):
            collar = np.array(
                [[ax, ay + 22 * u], [ax + side * 62 * u, ay - 18 * u], [ax + side * 74 * u, ay + 40 * u]]
            )
            cv2.fillPoly(img, [subpixel(collar)], accent, AA, SHIFT)
    else:  # blazer: a shirt in the V, lapels
        shirt = np.array([[ax - 50 * u, ay - 12 * u], [ax + 50 * u, ay - 12 * u], [ax, ay + 150 * u]])
        cv2.fillPoly(img, [subpixel(shirt)], accent, AA, SHIFT)
        for side in (-1, 1):
            lapel = np.array(
                [
                    [ax + side * 50 * u, ay - 14 * u],
                    [ax + side * 92 * u, ay + 20 * u],
                    [ax + side * 16 * u, ay + 150 * u],
                ]
            )
            cv2.fillPoly(img, [subpixel(lapel)], tuple(int(v * 0.8) for v in c["outfit"]), AA, SHIFT)


def draw_head(img: np.ndarray, spec: AvatarSpec, rig: Rig, anchor: tuple[float, float], unit: float) -> None:
    """The head, and the waving hand while it is up, into ``img`` (a region: ``anchor`` is in its pixels)."""
    c, u = spec.colors, unit
    ax, ay = anchor
    if rig.hand > 0.02:
        _draw_hand(img, spec, rig, ax, ay, unit)
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
            subpixel_point(pt(center)),
            subpixel_point(np.maximum(np.asarray(axes) * u, 0.3)),
            angle + roll,
            start,
            end,
            color,
            width,
            AA,
            SHIFT,
        )

    def poly(points, color) -> None:
        cv2.fillPoly(img, [subpixel(pt(points))], color, AA, SHIFT)

    def line(points, color, thickness: float) -> None:
        cv2.polylines(img, [subpixel(pt(points))], False, color, max(1, round(thickness * u)), AA, SHIFT)

    fx = s * 58  # features ride on the front of the head: they move more than its outline
    fy = p * 40
    hair = spec.hair
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
        fringe = [(x + fx * 0.3, -66 - 16 * abs(math.sin(x / 26 + 0.6))) for x in np.linspace(104, -104, 14)]
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
    _draw_mouth(spec, rig, fx, fy, line, poly)


def _draw_mouth(spec: AvatarSpec, rig: Rig, fx: float, fy: float, line, poly) -> None:
    c = spec.colors
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


def _draw_hand(img: np.ndarray, spec: AvatarSpec, rig: Rig, ax: float, ay: float, unit: float) -> None:
    c, u = spec.colors, unit
    raise_ = rig.hand
    shoulder = np.array([ax + 165 * u, ay + 60 * u])
    hand = np.array([ax + 220 * u, ay + (150 - 360 * raise_) * u])
    cv2.line(
        img,
        subpixel_point(shoulder),
        subpixel_point(hand + (0, 40 * u)),
        c["outfit"],
        max(2, round(46 * u)),
        AA,
        SHIFT,
    )
    angle = rig.hand_tilt * 22
    rot = math.radians(angle)
    for i, dx in enumerate((-21, -7, 7, 21)):
        length = (52, 60, 58, 48)[i]
        tip = hand + np.array([dx + math.sin(rot) * length, -math.cos(rot) * length]) * u
        base = hand + np.array([dx * 0.8, -10]) * u
        cv2.line(img, subpixel_point(base), subpixel_point(tip), c["skin"], max(2, round(13 * u)), AA, SHIFT)
    thumb = hand + np.array([-40 + math.sin(rot) * 8, -2]) * u
    cv2.line(
        img,
        subpixel_point(hand + (-18 * u, 12 * u)),
        subpixel_point(thumb),
        c["skin"],
        max(2, round(14 * u)),
        AA,
        SHIFT,
    )
    cv2.ellipse(
        img, subpixel_point(hand), subpixel_point((30 * u, 34 * u)), angle, 0, 360, c["skin"], -1, AA, SHIFT
    )
