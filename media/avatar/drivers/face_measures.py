"""Face measures: mediapipe face-mesh landmarks -> unitless face measures -> a rig pose (pure).

:func:`measure` turns 478 refined landmarks into head yaw/pitch/roll from landmark
geometry, eye aspect ratios, mouth opening, smile, brow height and iris position;
:func:`to_rig` maps them, relative to a neutral :class:`Calibration`, to a
:class:`~media.avatar.rig.Rig`. No I/O, no model: the face driver feeds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from media.avatar.rig import Rig

# Landmark indices of mediapipe's face mesh (with refine_landmarks: 468-477 are the irises).
NOSE_TIP = 1
CHEEKS = (234, 454)
FOREHEAD, CHIN = 10, 152
EYES = ((33, 133, 159, 145, 468), (362, 263, 386, 374, 473))  # corners, upper lid, lower lid, iris
BROWS = (105, 334)
LIPS_INNER = (13, 14)
MOUTH_CORNERS_INNER = (78, 308)
MOUTH_CORNERS = (61, 291)


@dataclass(frozen=True, slots=True)
class FaceMeasures:
    """Raw, unitless measures of one face (image frame: left/right as in the picture)."""

    yaw: float  # nose offset from the cheeks' midpoint, in half face widths (-1 .. 1)
    pitch: float  # nose height between the eye line and the chin (0 .. 1)
    roll: float  # degrees, the eye line's slope (clockwise positive)
    eye_l: float  # eye aspect ratio, eye on the picture's left
    eye_r: float
    mouth: float  # inner lip gap / mouth width
    smile: float  # mouth corners' lift above the lip centre / mouth width
    width: float  # mouth width / face width
    brows: float  # brow height above the eyes / face height
    gaze_x: float  # iris offset in half eye widths
    gaze_y: float  # iris offset in eye heights


@dataclass(frozen=True, slots=True)
class Calibration:
    """The operator's neutral face (eyes open, mouth closed, looking at the camera)."""

    yaw: float = 0.0
    pitch: float = 0.37
    roll: float = 0.0
    eye_open: float = 0.30
    eye_shut: float = 0.08
    mouth: float = 0.04
    smile: float = 0.02
    width: float = 0.40
    brows: float = 0.125
    gaze_x: float = 0.0
    gaze_y: float = 0.0

    @classmethod
    def from_measures(cls, m: FaceMeasures) -> Calibration:
        """Take ``m`` as the neutral pose."""
        return cls(
            yaw=m.yaw,
            pitch=m.pitch,
            roll=m.roll,
            eye_open=max(0.15, (m.eye_l + m.eye_r) / 2),
            mouth=min(m.mouth, 0.15),
            smile=m.smile,
            width=m.width,
            brows=m.brows,
            gaze_x=m.gaze_x,
            gaze_y=m.gaze_y,
        )


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.hypot(*(a[:2] - b[:2])))


def measure(points: np.ndarray) -> FaceMeasures:
    """Face measures from landmarks ``(478, 3)`` in pixels (pure)."""
    p = points
    nose = p[NOSE_TIP]
    left, right = sorted((p[CHEEKS[0]], p[CHEEKS[1]]), key=lambda q: q[0])
    face_w = max(1e-6, _dist(left, right))
    mid = (left + right) / 2
    yaw = (nose[0] - mid[0]) / (face_w / 2)
    eyes = sorted(EYES, key=lambda e: p[e[0]][0] + p[e[1]][0])  # picture-left eye first
    ratios, gx, gy, centres = [], [], [], []
    for corner_a, corner_b, upper, lower, iris in eyes:
        width = max(1e-6, _dist(p[corner_a], p[corner_b]))
        height = _dist(p[upper], p[lower])
        ratios.append(height / width)
        centre = (p[corner_a] + p[corner_b]) / 2
        centres.append(centre)
        gx.append((p[iris][0] - centre[0]) / (width / 2))
        gy.append((p[iris][1] - (p[upper][1] + p[lower][1]) / 2) / max(height, width * 0.2))
    outer_l, outer_r = sorted((p[33], p[263]), key=lambda q: q[0])
    roll = math.degrees(math.atan2(outer_r[1] - outer_l[1], outer_r[0] - outer_l[0]))
    eye_line = (centres[0] + centres[1]) / 2
    chin, forehead = p[CHIN], p[FOREHEAD]
    face_h = max(1e-6, _dist(forehead, chin))
    # Nose height between the eye line and the chin, measured along the face's own vertical axis.
    axis = (chin[:2] - eye_line[:2]) / max(1e-6, _dist(chin, eye_line))
    pitch = float(np.dot(nose[:2] - eye_line[:2], axis)) / max(1e-6, _dist(chin, eye_line))
    mouth_w = max(1e-6, _dist(p[MOUTH_CORNERS_INNER[0]], p[MOUTH_CORNERS_INNER[1]]))
    gap = _dist(p[LIPS_INNER[0]], p[LIPS_INNER[1]])
    lip_centre = (p[LIPS_INNER[0]] + p[LIPS_INNER[1]]) / 2
    corners = (p[MOUTH_CORNERS[0]] + p[MOUTH_CORNERS[1]]) / 2
    # "Up" is the face's up, so a tilted head does not read as a smile.
    lift = float(np.dot(lip_centre[:2] - corners[:2], axis)) / mouth_w
    brow = (p[BROWS[0]] + p[BROWS[1]]) / 2
    brows = float(np.dot(eye_line[:2] - brow[:2], axis)) / face_h
    return FaceMeasures(
        yaw=float(yaw),
        pitch=pitch,
        roll=roll,
        eye_l=ratios[0],
        eye_r=ratios[1],
        mouth=gap / mouth_w,
        smile=lift,
        width=_dist(p[MOUTH_CORNERS[0]], p[MOUTH_CORNERS[1]]) / face_w,
        brows=brows,
        gaze_x=float(np.mean(gx)),
        gaze_y=float(np.mean(gy)),
    )


def to_rig(m: FaceMeasures, cal: Calibration = Calibration()) -> Rig:
    """Map face measures to a rig pose, relative to the neutral ``cal`` (pure, clamped)."""

    def eye(ratio: float) -> float:
        return (ratio - cal.eye_shut) / max(1e-6, cal.eye_open - cal.eye_shut)

    yaw = math.degrees(math.asin(max(-1.0, min(1.0, (m.yaw - cal.yaw) * 1.1))))
    return Rig(
        yaw=yaw,
        pitch=(m.pitch - cal.pitch) * 160,
        roll=m.roll - cal.roll,
        eye_l=eye(m.eye_l),
        eye_r=eye(m.eye_r),
        brows=(m.brows - cal.brows) * 25,
        mouth_open=(m.mouth - cal.mouth) / 0.45,
        mouth_wide=(m.width - cal.width) * 4,
        smile=(m.smile - cal.smile) * 4 + (m.width - cal.width) * 2,
        gaze_x=(m.gaze_x - cal.gaze_x) * 2.2,
        gaze_y=(m.gaze_y - cal.gaze_y) * 1.5,
    ).clamped()


__all__ = ["Calibration", "FaceMeasures", "measure", "to_rig"]
