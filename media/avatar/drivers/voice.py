"""Voice driver: audio level -> mouth opening, in time with speech.

The level is the RMS of short windows (10 ms) of PCM, in dBFS, mapped between a
noise gate and a "full voice" level to 0..1, then shaped by an envelope that
opens fast (attack) and closes a little slower (release), as a mouth does. Time is
passed in: each chunk of audio says when its first sample was captured, so the
mouth matches the audio it came from rather than the moment it was processed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 0.010


def pcm_float(frame: av.AudioFrame | np.ndarray) -> np.ndarray:
    """Mono float samples in -1..1 from an ``av.AudioFrame`` (any format) or a numpy array.

    Integer arrays are scaled by their type's range; a 2-D array is (channels, samples)
    for planar data or (1, samples * channels) for packed: either way all channels are mixed.
    """
    if isinstance(frame, av.AudioFrame):
        data = frame.to_ndarray()
        channels = len(frame.layout.channels)
        if not frame.format.is_planar and channels > 1:
            data = data.reshape(-1, channels).T
    else:
        data = np.asarray(frame)
    if data.dtype.kind == "i":
        data = data.astype(np.float32) / float(-np.iinfo(data.dtype).min)
    elif data.dtype.kind == "u":
        info = np.iinfo(data.dtype)
        data = (data.astype(np.float32) - (info.max + 1) / 2) / ((info.max + 1) / 2)
    else:
        data = data.astype(np.float32)
    if data.ndim == 2:
        data = data.mean(axis=0)
    return data.reshape(-1)


def rms_dbfs(samples: np.ndarray) -> float:
    """The RMS level of float samples, in dB relative to full scale (silence: -120)."""
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20 * math.log10(rms) if rms > 1e-6 else -120.0


class VoiceDriver:
    """Opens the mouth with the voice.

    Args:
        gate_db: below this level the mouth is closed (room noise).
        full_db: at or above this level the mouth is fully open.
        attack: seconds for the mouth to open most of the way (time constant).
        release: seconds for it to close most of the way.
        hold: seconds of quiet before ``talking`` turns false (pauses between words).
    """

    def __init__(
        self,
        *,
        gate_db: float = -42.0,
        full_db: float = -14.0,
        attack: float = 0.025,
        release: float = 0.07,
        hold: float = 0.35,
    ) -> None:
        self.gate_db, self.full_db = gate_db, full_db
        self.attack, self.release, self.hold = attack, release, hold
        self._envelope = 0.0
        self._t: float | None = None  # the end of the audio processed so far
        self._last_voice: float | None = None
        self._history: deque[tuple[float, float]] = deque(maxlen=64)  # (time, envelope) per window
        self.level_db = -120.0
        self._task: asyncio.Task[None] | None = None

    def feed(self, audio: av.AudioFrame | np.ndarray, t: float, sample_rate: int | None = None) -> None:
        """Process audio whose first sample was captured at ``t`` (seconds).

        ``sample_rate`` is needed for numpy input; an ``av.AudioFrame`` carries its own.
        """
        rate = audio.sample_rate if isinstance(audio, av.AudioFrame) else sample_rate
        if not rate:
            raise ValueError("numpy audio needs its sample_rate")
        samples = pcm_float(audio)
        window = max(1, int(rate * WINDOW_SECONDS))
        for start in range(0, samples.size, window):
            chunk = samples[start : start + window]
            self._step(rms_dbfs(chunk), t + start / rate, chunk.size / rate)

    def _step(self, db: float, t: float, dt: float) -> None:
        self.level_db = db
        target = min(1.0, max(0.0, (db - self.gate_db) / (self.full_db - self.gate_db)))
        if self._t is not None and t > self._t + 0.1:
            self._envelope = 0.0  # a gap in the audio: start from closed
        tau = self.attack if target > self._envelope else self.release
        self._envelope += (target - self._envelope) * (1 - math.exp(-dt / tau))
        end = t + dt
        self._t = end if self._t is None else max(self._t, end)
        if target > 0.05:
            self._last_voice = end
        self._history.append((end, self._envelope))

    def mouth_at(self, t: float) -> float:
        """How open the mouth is at time ``t`` (0..1).

        The envelope value of the audio at ``t``; after the last processed audio it
        closes with the release time, so a stalled stream never leaves the mouth open.
        """
        if self._t is None:
            return 0.0
        if t >= self._t:
            return self._envelope * math.exp(-(t - self._t) / self.release)
        for end, value in reversed(self._history):
            if end <= t:
                return value
        return self._history[0][1] if self._history else 0.0

    def talking_at(self, t: float) -> bool:
        """Whether the voice is on at ``t`` (above the gate within the last ``hold`` seconds)."""
        return self._last_voice is not None and self._last_voice - 0.05 <= t <= self._last_voice + self.hold

    # -- driving from a track ---------------------------------------------

    def drive(self, track: MediaStreamTrack, *, clock: Callable[[], float] = time.monotonic) -> None:
        """Read ``track`` (audio) until it ends or :meth:`stop`: each frame is timed by its arrival."""
        if self._task is not None:
            raise RuntimeError("this voice driver is already driven by a track: stop() it first")
        self._task = asyncio.get_running_loop().create_task(self._run(track, clock), name="voice driver")

    async def _run(self, track: MediaStreamTrack, clock: Callable[[], float]) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, av.AudioFrame):
                    # It arrived now, so its first sample was captured one frame's duration ago.
                    self.feed(frame, clock() - frame.samples / frame.sample_rate)
        except MediaStreamError:
            logger.info("voice driver: track ended")
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("voice driver failed: the mouth closes")

    async def stop(self) -> None:
        """Stop reading the track; safe to call more than once."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
