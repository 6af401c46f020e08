"""The rig (pure) and the renderer, checked by measurable pixel features rather than bytes."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.avatar.renderer import AvatarRenderer
from media.avatar.rig import FIELDS, LIMITS, NEUTRAL, Rig, approach, blink, gesture, idle, lerp
from media.avatar.spec import load_spec, loads_spec


@pytest.fixture(scope="module")
def renderer() -> AvatarRenderer:
    return AvatarRenderer(load_spec("aurora"))


# -- rig -------------------------------------------------------------------


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=len(FIELDS), max_size=len(FIELDS)))
def test_clamped_is_always_in_range(values: list[float]) -> None:
    rig = Rig(*values).clamped()
    for name in FIELDS:
        lo, hi = LIMITS[name]
        assert lo <= getattr(rig, name) <= hi


def test_approach_is_frame_rate_independent() -> None:
    target = Rig(yaw=30, mouth_open=1)
    one = approach(NEUTRAL, target, 0.2, 0.1)
    two = approach(approach(NEUTRAL, target, 0.1, 0.1), target, 0.1, 0.1)
    assert one.yaw == pytest.approx(two.yaw) == pytest.approx(22.5)
    assert approach(NEUTRAL, target, 0, 0.1) == NEUTRAL
    assert lerp(NEUTRAL, target, 2.0) == target


def test_idle_is_deterministic_and_blinks() -> None:
    times = np.arange(0, 30, 1 / 30)
    a = [idle(t, seed=7) for t in times]
    assert a == [idle(t, seed=7) for t in times]
    assert a != [idle(t, seed=8) for t in times]
    shut = np.array([blink(t, 7) for t in times])
    blinks = np.sum((shut[1:] > 0.9) & (shut[:-1] <= 0.9))
    assert 5 <= blinks <= 16  # one every 2-6 s
    assert shut.max() == pytest.approx(1.0, abs=0.15)
    # Smooth: no frame-to-frame jump in the head bigger than a degree.
    assert max(abs(x.yaw - y.yaw) for x, y in zip(a, a[1:], strict=False)) < 1


@pytest.mark.parametrize("name", ["nod", "shake", "wave"])
def test_gestures_start_and_end_at_neutral(name: str) -> None:
    from media.avatar.rig import GESTURES

    for t in (0.0, GESTURES[name]):
        rig = gesture(name, t)
        assert all(abs(getattr(rig, f) - getattr(NEUTRAL, f)) < 1e-6 for f in FIELDS)
    peak = max(
        (gesture(name, t) for t in np.linspace(0, GESTURES[name], 60)),
        key=lambda r: abs(r.pitch) + abs(r.yaw) + r.hand,
    )
    assert abs(peak.pitch) > 5 or abs(peak.yaw) > 5 or peak.hand > 0.9


# -- renderer --------------------------------------------------------------


def _mouth_dark(renderer: AvatarRenderer, rig: Rig) -> int:
    ax, ay = renderer.anchor
    u = renderer.unit
    bgr = renderer.render_bgr(rig)
    region = bgr[int(ay - 175 * u) : int(ay - 108 * u), int(ax - 45 * u) : int(ax + 45 * u)].astype(int)
    mouth = np.array(renderer.colors["mouth"], int)
    return int((np.abs(region - mouth).sum(axis=2) < 60).sum())


def _feature_centroid(renderer: AvatarRenderer, rig: Rig) -> tuple[float, float]:
    """Centroid of the eye whites, in a fixed window over the face."""
    ax, ay = renderer.anchor
    u = renderer.unit
    x0, y0 = int(ax - 110 * u), int(ay - 300 * u)
    window = renderer.render_bgr(rig)[y0 : int(ay - 120 * u), x0 : int(ax + 110 * u)]
    ys, xs = np.nonzero(window.min(axis=2) > 225)
    return float(xs.mean() + x0), float(ys.mean() + y0)


def test_mouth_dark_area_grows_with_mouth_open(renderer: AvatarRenderer) -> None:
    areas = [_mouth_dark(renderer, Rig(mouth_open=m)) for m in (0.0, 0.3, 0.6, 1.0)]
    assert areas == sorted(areas) and areas[0] < 50 and areas[-1] > 600


def test_yaw_moves_the_features_and_pitch_lowers_them(renderer: AvatarRenderer) -> None:
    left, right = _feature_centroid(renderer, Rig(yaw=-30)), _feature_centroid(renderer, Rig(yaw=30))
    centre = _feature_centroid(renderer, NEUTRAL)
    assert left[0] + 15 < centre[0] < right[0] - 15
    down = _feature_centroid(renderer, Rig(pitch=20))
    assert down[1] > centre[1] + 8


def test_closed_eyes_show_less_white(renderer: AvatarRenderer) -> None:
    def white(rig: Rig) -> int:
        return int((renderer.render_bgr(rig).min(axis=2) > 225).sum())

    assert white(Rig(eye_l=0, eye_r=0)) < white(Rig()) - 300
    assert white(Rig(eye_l=0)) < white(Rig())


def test_roll_tilts_the_head(renderer: AvatarRenderer) -> None:
    box = renderer.head_box(NEUTRAL)
    hair = np.array(renderer.colors["hair"], int)

    def hair_top_x(rig: Rig) -> float:
        bgr = renderer.render_bgr(rig)[box.y0 : box.y1, box.x0 : box.x1].astype(int)
        mask = np.abs(bgr - hair).sum(axis=2) < 30
        ys, xs = np.nonzero(mask)
        top = ys < ys.min() + 20
        return float(xs[top].mean())

    assert hair_top_x(Rig(roll=20)) > hair_top_x(Rig(roll=-20)) + 20


def test_wave_raises_a_hand(renderer: AvatarRenderer) -> None:
    ax, ay = renderer.anchor
    u = renderer.unit
    skin = np.array(renderer.colors["skin"], int)

    def skin_right_of_head(rig: Rig) -> int:
        bgr = renderer.render_bgr(rig)[: int(ay), int(ax + 150 * u) :].astype(int)
        return int((np.abs(bgr - skin).sum(axis=2) < 30).sum())

    assert skin_right_of_head(Rig(hand=1)) > skin_right_of_head(NEUTRAL) + 1000


def test_safe_zone_is_never_covered_and_captions_avoid_it() -> None:
    # A safe zone right where the caption and the avatar would go by default.
    spec = loads_spec(
        """
        [colors]
        background = "#203040"
        [safe_zone]
        x = 0.35
        y = 0.80
        width = 0.3
        height = 0.15
        """
    )
    renderer = AvatarRenderer(spec, 1280, 720)
    zone = renderer.safe_box
    assert zone is not None
    blank = cv2.cvtColor(renderer._static_yuv, cv2.COLOR_YUV2BGR_I420)[zone.y0 : zone.y1, zone.x0 : zone.x1]
    text = "Welcome! You are number 2 in the queue; expected wait about three minutes. " * 2
    for rig in (NEUTRAL, Rig(yaw=35, roll=30, hand=1, mouth_open=1), Rig(yaw=-35, roll=-30, pitch=25)):
        frame = renderer.render_bgr(rig, text)
        assert np.array_equal(frame[zone.y0 : zone.y1, zone.x0 : zone.x1], blank)
    caption = renderer.caption_box(text)
    assert caption is not None and not caption.overlaps(zone)
    assert not renderer._avatar_box(*renderer.anchor, renderer.unit).overlaps(zone)


def test_caption_is_drawn(renderer: AvatarRenderer) -> None:
    box = renderer.caption_box("Hello there")
    assert box is not None
    plain = renderer.render_bgr(NEUTRAL)[box.y0 : box.y1, box.x0 : box.x1]
    captioned = renderer.render_bgr(NEUTRAL, "Hello there")[box.y0 : box.y1, box.x0 : box.x1]
    assert (captioned.min(axis=2) > 200).sum() > 200  # white text
    assert np.abs(plain.astype(int) - captioned).mean() > 10


def test_frames_are_fresh_buffers(renderer: AvatarRenderer) -> None:
    a = renderer.render(NEUTRAL)
    b = renderer.render(Rig(mouth_open=1))
    assert a.shape == (1080, 1280) and a is not b and not np.array_equal(a, b)


def test_render_is_fast_enough(renderer: AvatarRenderer) -> None:
    import time

    times = []
    for i in range(90):
        rig = idle(i / 30).with_(mouth_open=abs(math.sin(i / 4)))
        started = time.perf_counter()
        renderer.render(rig, "Hello" if i % 2 else None)
        times.append(time.perf_counter() - started)
    # Generous: the benchmark holds the 4 ms p95 target. This only checks that a render fits in one
    # frame interval at 30 fps (an ~8x regression), which a busy machine does not break (8 ms did).
    assert np.median(times) < 1 / 30
