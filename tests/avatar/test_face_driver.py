"""The face driver on a real face (scikit-image's astronaut), warped to turn the head and open the mouth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from media.avatar.drivers.face import FaceDriver
from media.avatar.drivers.face_measures import measure, to_rig
from media.avatar.drivers.filters import OneEuroFilter
from media.avatar.rig import idle

FPS = 30


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def driver() -> FaceDriver:
    face = FaceDriver()
    yield face
    face.close()


def _warp(image: np.ndarray, *, shift_x: float = 0.0, open_mouth: float = 0.0) -> np.ndarray:
    """Move the middle of the face sideways (a head turn) and/or pull the lower lip and jaw down."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = 224.0, 125.0  # the astronaut's nose
    centre = np.exp(-(((xs - cx) / 32) ** 2) - ((ys - cy) / 48) ** 2)
    map_x = xs - shift_x * centre
    lip = 145.0
    below = np.clip((ys - lip) / 14, 0, 1) * np.exp(-(((xs - cx) / 34) ** 2)) * (ys < 205)
    map_y = ys - open_mouth * below
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _hold(driver: FaceDriver, image: np.ndarray, t: float, frames: int = 15) -> tuple:
    rig = None
    for i in range(frames):
        rig = driver.process(image, t + i / FPS)
    return rig, t + frames / FPS


def test_one_euro_filter_smooths_noise_and_follows_steps() -> None:
    f = OneEuroFilter(min_cutoff=1.0, beta=0.05)
    rng = np.random.default_rng(1)
    out = [f(1.0 + 0.05 * rng.standard_normal(), i / FPS) for i in range(60)]
    assert np.std(out[20:]) < 0.02
    stepped = [f(5.0, 2 + i / FPS) for i in range(30)]
    assert stepped[-1] == pytest.approx(5.0, abs=0.1)


def test_face_is_found_and_neutral_ish(driver: FaceDriver, astronaut: np.ndarray) -> None:
    rig, _ = _hold(driver, astronaut, 0.0)
    assert driver.tracking and driver.weight > 0.95
    assert abs(rig.yaw) < 10 and abs(rig.roll) < 10
    assert rig.eye_l > 0.6 and rig.eye_r > 0.6


def test_turning_the_head_moves_yaw_and_mirroring_flips_it(driver: FaceDriver, astronaut: np.ndarray) -> None:
    t = 10.0
    base, t = _hold(driver, astronaut, t)
    right, t = _hold(driver, _warp(astronaut, shift_x=16), t)
    left, t = _hold(driver, cv2.flip(_warp(astronaut, shift_x=16), 1), t)
    assert right.yaw > base.yaw + 6
    assert left.yaw < base.yaw - 6
    # Roll follows the picture too: mirroring flips its sign.
    assert np.sign(left.roll) != np.sign(right.roll) or abs(left.roll) < 1


def test_opening_the_mouth_moves_mouth_open(driver: FaceDriver, astronaut: np.ndarray) -> None:
    t = 20.0
    closed, t = _hold(driver, astronaut, t)
    opened, t = _hold(driver, _warp(astronaut, open_mouth=14), t)
    assert opened.mouth_open > closed.mouth_open + 0.25


def test_calibration_makes_the_current_face_neutral(astronaut: np.ndarray, driver: FaceDriver) -> None:
    _hold(driver, astronaut, 30.0)
    saved = driver.calibration
    try:
        assert driver.calibrate()
        rig = to_rig(driver.measures, driver.calibration)
        assert abs(rig.yaw) < 1 and abs(rig.mouth_open) < 0.1 and rig.eye_l == pytest.approx(1.0, abs=0.1)
    finally:
        driver.calibration = saved


def test_losing_the_face_eases_to_a_blinking_idle_without_jumps(
    driver: FaceDriver, astronaut: np.ndarray
) -> None:
    t = 40.0
    turned = _warp(astronaut, shift_x=16, open_mouth=14)
    rig, t = _hold(driver, turned, t)
    assert rig.yaw > 5 and rig.mouth_open > 0.3
    blank = np.full_like(astronaut, 90)
    poses = [rig]
    for i in range(9 * FPS):
        poses.append(driver.process(blank, t + i / FPS))
    assert not driver.tracking
    steps = [abs(a.yaw - b.yaw) for a, b in zip(poses, poses[1:], strict=False)]
    mouth_steps = [abs(a.mouth_open - b.mouth_open) for a, b in zip(poses, poses[1:], strict=False)]
    assert max(steps) < 3.0 and max(mouth_steps) < 0.15  # eases, never jumps
    assert len({round(p.yaw, 4) for p in poses[-30:]}) > 5  # never freezes: idle keeps moving
    end = t + (len(poses) - 2) / FPS
    assert driver.weight < 0.02
    assert poses[-1].yaw == pytest.approx(idle(end, driver.seed).yaw, abs=0.5)
    assert min(p.eye_l for p in poses[2 * FPS :]) < 0.3  # it blinks
    # And the face coming back eases in too.
    back = [driver.process(turned, t + 9 + i / FPS) for i in range(20)]
    assert max(abs(a.yaw - b.yaw) for a, b in zip([poses[-1], *back], back, strict=False)) < 6.0
    assert back[-1].yaw > 5


def test_measure_is_pure_and_mirror_symmetric(driver: FaceDriver, astronaut: np.ndarray) -> None:
    # Landmarks mirrored by hand (not by re-running the model): yaw and roll flip, the rest stays.
    _hold(driver, astronaut, 50.0)
    m = driver.measures
    assert m is not None
    rig = to_rig(m)
    assert rig == to_rig(m)
    assert measure is not None
    points = driver._landmarker(cv2.cvtColor(astronaut, cv2.COLOR_BGR2RGB))
    assert points is not None
    kept = points.copy()
    a = measure(points)
    assert measure(points) == a and np.array_equal(points, kept)  # pure: same answer, input untouched
    mirrored = points.copy()
    mirrored[:, 0] = astronaut.shape[1] - mirrored[:, 0]
    b = measure(mirrored)
    close = {"abs": 1e-9}
    assert b.yaw == pytest.approx(-a.yaw, **close) and b.roll == pytest.approx(-a.roll, **close)
    assert b.gaze_x == pytest.approx(-a.gaze_x, **close)
    assert (b.eye_l, b.eye_r) == pytest.approx((a.eye_r, a.eye_l), **close)
    for name in ("pitch", "mouth", "smile", "width", "brows", "gaze_y"):
        assert getattr(b, name) == pytest.approx(getattr(a, name), **close), name


def test_av_frames_are_downscaled_before_inference(astronaut: np.ndarray) -> None:
    import av

    seen: list[tuple[int, int]] = []

    def fake(rgb: np.ndarray):
        seen.append(rgb.shape[:2])
        return None

    face = FaceDriver(landmarker=fake, width=640)
    frame = av.VideoFrame.from_ndarray(cv2.resize(astronaut, (1280, 720)), format="bgr24").reformat(
        format="yuv420p"
    )
    face.process(frame, 0.0)
    face.process(cv2.resize(astronaut, (1280, 720)), 0.1)
    assert seen == [(360, 640), (360, 640)]
    assert not face.tracking
