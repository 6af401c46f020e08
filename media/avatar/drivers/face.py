"""Face driver: an operator's camera -> mediapipe FaceMesh landmarks -> the rig, smoothed.

The operator's picture never leaves this module: only rig numbers do.

- Frames are downscaled before inference (``width``, 640 by default: the face
  mesh's own inputs are 128-192 px crops, so a 720p frame only costs conversion).
  One swscale call per ``av.VideoFrame`` does the resize and the RGB conversion.
- :mod:`media.avatar.drivers.face_measures` (pure) turns the landmarks into face
  measures and, relative to a neutral calibration, into a rig pose.
- Each rig field goes through a One Euro filter (time passed in).
- A tracking weight eases towards 1 while a face is found and towards 0 when it is
  lost; the output blends the last tracked pose with the neutral idle (blinking),
  so losing the face eases to idle and finding it eases back: never a freeze, never a jump.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace

import av
import cv2
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from media.avatar.drivers.face_measures import Calibration, FaceMeasures, measure, to_rig
from media.avatar.drivers.filters import OneEuroFilter
from media.avatar.rig import NEUTRAL, Rig, idle, lerp
from media.stamp import Stamp, read_stamp
from media.tracks import FrameSlot, TrackDrain

logger = logging.getLogger(__name__)

Landmarker = Callable[[np.ndarray], "np.ndarray | None"]
"""RGB image (h, w, 3) uint8 -> landmarks (478, 3) in that image's pixels (z scaled like x), or None."""


class MediapipeLandmarker:
    """mediapipe's legacy FaceMesh (refine_landmarks: irises too), video mode, one face."""

    def __init__(self, *, static_image_mode: bool = False) -> None:
        import mediapipe as mp  # heavy: imported only when a face driver is made

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static_image_mode,
            max_num_faces=1,
            refine_landmarks=True,
            min_detection_confidence=0.5,
            min_tracking_confidence=0.5,
        )

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        result = self._mesh.process(rgb)
        if not result.multi_face_landmarks:
            return None
        h, w = rgb.shape[:2]
        marks = result.multi_face_landmarks[0].landmark
        return np.array([(q.x * w, q.y * h, q.z * w) for q in marks], np.float64)

    def close(self) -> None:
        self._mesh.close()


# Smoothing per field: (min_cutoff Hz, beta). Eyes and mouth must stay quick (blinks, speech).
FILTERS: dict[str, tuple[float, float]] = {
    "yaw": (1.5, 0.02),
    "pitch": (1.5, 0.02),
    "roll": (1.5, 0.02),
    "eye_l": (4.0, 0.5),
    "eye_r": (4.0, 0.5),
    "brows": (2.0, 0.3),
    "mouth_open": (5.0, 1.0),
    "mouth_wide": (2.0, 0.3),
    "smile": (2.0, 0.3),
    "gaze_x": (2.0, 0.3),
    "gaze_y": (2.0, 0.3),
}
FOUND_HALF_LIFE = 0.06  # seconds: a found face takes over quickly, but without a jump
LOST_HALF_LIFE = 0.3  # a lost face hands over to the idle pose gently
LOST_RESET_SECONDS = 0.5  # after this long without a face, filters restart on the next face


class FaceDriver:
    """Drive the rig from an operator's camera frames.

    Args:
        width: inference width (frames wider than this are downscaled, keeping aspect).
        every: run inference on every n-th frame (1: each frame); the filters carry the rest.
        seed: the idle pose's seed (blinks while tracking is lost).
        calibration: the neutral face; :meth:`calibrate` takes the current one.
        landmarker: image -> landmarks; mediapipe's FaceMesh by default (tests may pass a fake).
        read_stamps: read :mod:`media.stamp` stamps from frames (latency measurement).

    Call :meth:`process` with each frame and its time, or :meth:`drive` with a track;
    read the pose with :meth:`rig_at`.
    """

    def __init__(
        self,
        *,
        width: int = 640,
        every: int = 1,
        seed: int = 0,
        calibration: Calibration | None = None,
        landmarker: Landmarker | None = None,
        read_stamps: bool = False,
    ) -> None:
        self.width = width
        self.every = max(1, every)
        self.seed = seed
        self.calibration = calibration or Calibration()
        self._landmarker = landmarker if landmarker is not None else MediapipeLandmarker()
        self.read_stamps = read_stamps
        self._filters = {name: OneEuroFilter(*FILTERS[name]) for name in FILTERS}
        self._tracked: Rig = NEUTRAL.with_(smile=0.12)
        self._weight = 0.0
        self._found = False
        self._updated: float | None = None
        self._last_seen: float | None = None
        self.measures: FaceMeasures | None = None
        self.stamp: Stamp | None = None
        self.frames = 0
        self.inferences = 0
        self._task: asyncio.Task[None] | None = None
        self._drain: TrackDrain | None = None

    @property
    def tracking(self) -> bool:
        """Whether the last inference found a face."""
        return self._found

    def calibrate(self) -> bool:
        """Take the operator's current face as neutral; ``False`` if no face is tracked."""
        if self.measures is None or not self._found:
            return False
        self.calibration = Calibration.from_measures(self.measures)
        return True

    def process(self, image: av.VideoFrame | np.ndarray, t: float) -> Rig:
        """Feed one camera frame (an ``av.VideoFrame`` or a BGR array) taken at time ``t``.

        Returns the pose at ``t`` (as :meth:`rig_at`).
        """
        index = self.frames
        self.frames += 1
        if self.read_stamps and isinstance(image, av.VideoFrame):
            self.stamp = read_stamp(image) or self.stamp
        if index % self.every == 0:
            self.inferences += 1
            points = self._landmarker(self._rgb(image))
            self._update(points, t)
        return self.rig_at(t)

    def _rgb(self, image: av.VideoFrame | np.ndarray) -> np.ndarray:
        if isinstance(image, av.VideoFrame):
            w, h = image.width, image.height
            if w > self.width:
                w, h = self.width, round(image.height * self.width / image.width) // 2 * 2
            # One swscale pass: resize and convert together.
            return image.reformat(width=w, height=h, format="rgb24", threads=1).to_ndarray()
        h, w = image.shape[:2]
        if w > self.width:
            image = cv2.resize(image, (self.width, round(h * self.width / w)), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def _update(self, points: np.ndarray | None, t: float) -> None:
        self._advance(t)
        if points is None:
            if self._found:
                logger.info("face lost: easing to idle")
            self._found = False
            return
        if self._last_seen is None or t - self._last_seen > LOST_RESET_SECONDS:
            for f in self._filters.values():
                f.reset()
        self._found = True
        self._last_seen = t
        self.measures = measure(points)
        raw = to_rig(self.measures, self.calibration)
        values = {name: self._filters[name](getattr(raw, name), t) for name in FILTERS}
        self._tracked = replace(raw, **values).clamped()

    def _advance(self, t: float) -> None:
        """Move the tracking weight to time ``t``."""
        if self._updated is None:
            self._updated = t
            self._weight = 0.0
        dt = t - self._updated
        if dt > 0:
            half_life = FOUND_HALF_LIFE if self._found else LOST_HALF_LIFE
            target = 1.0 if self._found else 0.0
            self._weight += (target - self._weight) * (1 - 0.5 ** (dt / half_life))
            self._updated = t

    def rig_at(self, t: float) -> Rig:
        """The driven pose at time ``t``: the tracked face, blended with the idle pose by tracking weight."""
        self._advance(t)
        if self._weight >= 0.999:
            return self._tracked
        return lerp(idle(t, self.seed), self._tracked, self._weight)

    @property
    def weight(self) -> float:
        """How much of the pose comes from the tracked face (0 .. 1)."""
        return self._weight

    # -- driving from a track ---------------------------------------------

    def drive(self, track: MediaStreamTrack, *, clock: Callable[[], float] = time.monotonic) -> None:
        """Run inference on ``track``'s newest frames in a worker thread, until :meth:`stop`.

        Frames go through a newest-wins slot, so a slow inference skips frames rather
        than queueing them; a frame's time is its arrival time on ``clock``.
        """
        if self._task is not None:
            raise RuntimeError("this face driver is already driven by a track: stop() it first")
        slot = FrameSlot("operator camera", clock=clock)
        self._drain = TrackDrain(track, slot, label="face driver")
        self._task = asyncio.get_running_loop().create_task(self._run(slot), name="face driver")

    async def _run(self, slot: FrameSlot) -> None:
        loop = asyncio.get_running_loop()
        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="face")
        version = 0
        try:
            while True:
                if not await slot.wait_newer(version, 0.5):
                    if slot.ended:
                        return
                    continue
                latest = slot.latest
                if latest is None:
                    continue
                version = latest.version
                slot.mark_read(version)
                await loop.run_in_executor(executor, self.process, latest.frame, latest.arrived)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A broken frame or model error stops driving; the avatar eases to idle.
            logger.exception("face driver failed")
        finally:
            self._found = False
            executor.shutdown(wait=False)

    async def stop(self) -> None:
        """Stop driving from a track (the pose eases to idle); safe to call more than once."""
        task, self._task = self._task, None
        drain, self._drain = self._drain, None
        if drain is not None:
            await drain.stop()
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        self._found = False

    def close(self) -> None:
        """Release the model."""
        close = getattr(self._landmarker, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()


__all__ = ["FaceDriver", "Landmarker", "MediapipeLandmarker"]
