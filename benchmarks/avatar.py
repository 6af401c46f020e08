"""Suite "avatar": render cost, face driver cost, and operator-face-to-customer-pixels latency.

- render: :class:`~media.avatar.renderer.AvatarRenderer` at 720p, a moving pose
  (idle sway and blinks, talking mouth, a wave now and then, captions on and off).
- face_driver: :class:`~media.avatar.drivers.face.FaceDriver` on 720p yuv420p
  camera frames (scikit-image's astronaut, alternating a closed and an open mouth):
  downscale + RGB conversion + FaceMesh (refine_landmarks) + mapping + filters.
- driver_to_pixels: the operator's stamped 720p camera -> a real aiortc peer ->
  the server's face driver -> AvatarTrack (stamped with the driving camera frame's
  stamp) -> CompositorTrack (avatar layout) -> a real aiortc peer -> the customer's
  decoded frame. The operator opens and closes the mouth every second; latency is
  from the capture time (stamp) of the first camera frame with the new mouth to the
  arrival of the first customer frame whose pixels show the avatar's mouth changed
  and whose stamp names that camera frame or a later one.
"""

from __future__ import annotations

import asyncio
import time

import cv2
import numpy as np

from benchmarks.progress import progress
from media.avatar.controller import AvatarController
from media.avatar.drivers.face import FaceDriver
from media.avatar.renderer import AvatarRenderer
from media.avatar.rig import gesture, idle
from media.avatar.spec import load_spec
from media.avatar.track import AvatarTrack
from media.compositor import CompositorTrack
from media.layout import AVATAR
from media.planes import frame_planes
from media.sources import SyntheticVideoTrack
from media.stamp import read_stamp
from media.testing import LoopbackCall

SWITCH_SECONDS = 1.0


def _faces() -> list[np.ndarray]:
    """Two 720p BGR camera pictures of a real face: mouth closed, mouth open."""
    from skimage import data

    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    h, w = face.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    below = np.clip((ys - 145) / 14, 0, 1) * np.exp(-(((xs - 224) / 34) ** 2)) * (ys < 205)
    opened = cv2.remap(face, xs, ys - 14 * below, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    out = []
    for picture in (face, opened):
        canvas = np.full((720, 1280, 3), 70, np.uint8)
        canvas[24:720, 292:988] = cv2.resize(picture[0:512, 0:512], (696, 696), interpolation=cv2.INTER_AREA)
        out.append(canvas)
    return out


def _p(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if values else float("nan")


def _render(quick: bool) -> dict:
    n = 300 if quick else 3000
    renderer = AvatarRenderer(load_spec("aurora"))
    times = []
    for i in progress(range(n), desc="render"):
        t = i / 30
        wave = gesture("wave", t % 8)
        rig = idle(t).with_(mouth_open=abs(np.sin(t * 9)) * 0.8, hand=wave.hand, hand_tilt=wave.hand_tilt)
        caption = "Welcome! An agent will be with you in about two minutes." if (i // 90) % 2 else None
        started = time.perf_counter()
        renderer.render(rig, caption)
        times.append((time.perf_counter() - started) * 1000)
    times = times[10:]
    return {
        "render_p50_ms": _p(times, 50),
        "render_p95_ms": _p(times, 95),
        "render_frames": len(times),
        "render_frames_expected": n - 10,
    }


def _face(quick: bool) -> dict:
    import av

    n = 150 if quick else 900
    frames = [av.VideoFrame.from_ndarray(f, format="bgr24").reformat(format="yuv420p") for f in _faces()]
    driver = FaceDriver()
    times, found = [], 0
    for i in progress(range(n), desc="face driver"):
        frame = frames[(i // 15) % 2]
        started = time.perf_counter()
        driver.process(frame, i / 30)
        times.append((time.perf_counter() - started) * 1000)
        found += driver.tracking
    driver.close()
    times = times[5:]
    return {
        "face_driver_frames": len(times),
        "face_driver_frames_expected": n - 5,
        "face_driver_p50_ms": _p(times, 50),
        "face_driver_p95_ms": _p(times, 95),
        "face_found": round(found / n, 3),
    }


class OperatorCamera(SyntheticVideoTrack):
    """The operator's stamped camera: a real face, the mouth opening and closing every second."""

    def __init__(self, pictures: list[np.ndarray]) -> None:
        super().__init__(1280, 720, 30, stamp=True)
        self._pictures = []
        for picture in pictures:
            i420 = cv2.cvtColor(picture, cv2.COLOR_BGR2YUV_I420)
            self._pictures.append((i420[:720], i420[720:900].reshape(360, 640), i420[900:].reshape(360, 640)))
        self.switches: list[tuple[int, float, int]] = []  # (frame index, wall time, pose)
        self._pose = -1

    def draw(self, index: int, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        pose = int(index / (self.fps * SWITCH_SECONDS)) % 2
        y[:], u[:], v[:] = self._pictures[pose]
        if pose != self._pose:
            self._pose = pose
            self.switches.append((index, time.time(), pose))


def _mouth_dark(frame, renderer: AvatarRenderer) -> int:
    """Dark (mouth interior) pixels around the avatar's mouth, from the luma plane."""
    ax, ay = renderer.anchor
    u = renderer.unit
    luma = frame_planes(frame)[0]
    region = luma[int(ay - 185 * u) : int(ay - 100 * u), int(ax - 60 * u) : int(ax + 60 * u)]
    return int((region < 75).sum())


async def _driver_to_pixels(quick: bool) -> dict:
    seconds = 14.0 if quick else 40.0
    camera = OperatorCamera(_faces())
    face = FaceDriver(read_stamps=True)
    avatar = AvatarTrack("aurora", controller=AvatarController(face=face), stamp="input")
    renderer = avatar.engine.renderer
    compositor = CompositorTrack(size="720p", layout="avatar", agent_name="Agent")
    await compositor.attach(AVATAR, avatar)
    operator = LoopbackCall([camera], drain=False, label="operator")
    customer = LoopbackCall([compositor], label="customer")
    samples: list[tuple[float, int, int | None]] = []  # (arrival wall time, mouth pixels, stamp frame id)
    async with operator, customer:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not operator.received and loop.time() < deadline:  # noqa: ASYNC110 - set by a callback
            await asyncio.sleep(0.01)
        face.drive(operator.received[0])
        slot = await customer.wait_frames(1, timeout=15)
        version = slot.version
        start = loop.time()
        for _ in progress(range(int(seconds * 10)), desc="driver to pixels"):
            tick = loop.time() + 0.1
            while loop.time() < tick:
                if await slot.wait_newer(version, max(0.0, tick - loop.time())):
                    latest = slot.latest
                    version = latest.version
                    slot.mark_read(version)
                    stamp = read_stamp(latest.frame)
                    samples.append(
                        (time.time(), _mouth_dark(latest.frame, renderer), stamp.frame_id if stamp else None)
                    )
        elapsed = loop.time() - start
        await face.stop()
    await compositor.close()
    avatar.stop()
    face.close()
    values = [m for _, m, _ in samples]
    threshold = (np.percentile(values, 5) + np.percentile(values, 95)) / 2 if values else 0
    latencies = []
    # The first seconds of a call are a start-up transient; a switch in the last half second
    # could not have shown yet. Every other switch is expected to be seen: one that is not
    # (the mouth never crossed the threshold) is a failed sample, counted.
    last_arrival = samples[-1][0] if samples else 0.0
    judged = [s for s in camera.switches[4:] if s[1] < last_arrival - 0.5]
    for index, at, pose in judged:
        for arrived, mouth, frame_id in samples:
            if arrived < at or (frame_id is not None and (frame_id - index) % 65536 > 30000):
                continue
            if (mouth > threshold) == bool(pose):
                latencies.append((arrived - at) * 1000)
                break
    return {
        "driver_to_pixels_p50_ms": _p(latencies, 50),
        "driver_to_pixels_p95_ms": _p(latencies, 95),
        "driver_to_pixels_switches": len(latencies),
        "driver_to_pixels_switches_expected": len(judged),
        "customer_fps": round(len(samples) / elapsed, 1) if elapsed else 0.0,
        "mouth_threshold_px": round(float(threshold), 1),
        "face_inferences": face.inferences,
    }


def run(quick: bool) -> dict:
    """Render, face driver, then the end-to-end path (one after another: they share two cores)."""
    summary = {}
    summary.update(_render(quick))
    summary.update(_face(quick))
    summary.update(asyncio.run(_driver_to_pixels(quick)))
    parts = {
        "render": ("render_frames_expected", "render_frames"),
        "face_driver": ("face_driver_frames_expected", "face_driver_frames"),
        "driver_to_pixels": ("driver_to_pixels_switches_expected", "driver_to_pixels_switches"),
    }
    summary["samples_by_part"] = {
        part: {"expected": summary[expected], "measured": summary[measured]}
        for part, (expected, measured) in parts.items()
    }
    summary["samples_expected"] = sum(c["expected"] for c in summary["samples_by_part"].values())
    summary["samples_measured"] = sum(c["measured"] for c in summary["samples_by_part"].values())
    return summary
