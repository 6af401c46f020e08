"""Outgoing tracks that forward what another peer sends: video from a slot, audio through a pipe.

A call relays the customer's camera and screen to the agent and each side's
microphone to the other. The source may not exist yet when a peer connection is
answered (the other side negotiates later), may go away (a reload) and come back,
and must never be read faster than it arrives or left unread (aiortc queues grow
without bound). So:

- :class:`SlotTrack` sends the newest frame of a :class:`~media.tracks.FrameSlot`
  (filled by a :class:`~media.tracks.TrackDrain`) each time it changes: a slow
  sender skips frames instead of queueing them.
- :class:`AudioPipe` relays audio in order through a short bounded queue (old
  audio is dropped, never delayed), in one format (48 kHz stereo s16, what Opus
  decodes to), and plays silence with continuous timestamps while it has no
  source, so the sender is set up once and a source can come and go without
  renegotiation.
"""

from __future__ import annotations

import asyncio
import fractions
import logging

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.tracks import FrameSlot

logger = logging.getLogger(__name__)

AUDIO_RATE = 48000
AUDIO_PTIME = 0.020  # 20 ms frames, what Opus sends
AUDIO_SAMPLES = int(AUDIO_RATE * AUDIO_PTIME)
AUDIO_QUEUE_FRAMES = 5  # at most 100 ms of relayed audio waits; older audio is dropped


class SlotTrack(MediaStreamTrack):
    """A video track that sends a slot's newest frame whenever the slot has a new one."""

    kind = "video"

    def __init__(self, slot: FrameSlot) -> None:
        super().__init__()
        self.slot = slot
        self._version = 0

    async def recv(self) -> av.VideoFrame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if not await self.slot.wait_newer(self._version, timeout=0.5):
                continue
            latest = self.slot.latest
            if latest is None:
                continue
            self._version = latest.version
            self.slot.mark_read(latest.version)
            return latest.frame


class AudioPipe:
    """Relays whichever audio source is attached to one outgoing track at a time.

    :meth:`output` makes the track a peer connection sends. An aiortc sender stops its
    track when its connection closes, so each connection (a reload makes a new one)
    gets a fresh output while the pipe, its queue and its source live on.
    """

    def __init__(self, label: str = "audio") -> None:
        self.label = label
        self._queue: asyncio.Queue[av.AudioFrame] = asyncio.Queue(maxsize=AUDIO_QUEUE_FRAMES)
        self._pump: asyncio.Task[None] | None = None
        self._resampler: av.AudioResampler | None = None
        self.relayed = 0
        self.dropped = 0
        self.silent = 0

    @property
    def attached(self) -> bool:
        return self._pump is not None and not self._pump.done()

    def output(self) -> MediaStreamTrack:
        """A new outgoing track fed by this pipe (silence while no source is attached)."""
        return _PipeOutput(self)

    async def attach(self, source: MediaStreamTrack) -> None:
        """Relay ``source`` from now on (replacing any previous source)."""
        await self.detach()
        self._pump = asyncio.get_running_loop().create_task(
            self._run(source), name=f"audio pump {self.label}"
        )

    async def detach(self) -> None:
        """Stop relaying; silence until the next :meth:`attach`. Safe to call more than once."""
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
            await asyncio.wait({pump})

    async def close(self) -> None:
        await self.detach()

    async def _run(self, source: MediaStreamTrack) -> None:
        try:
            while True:
                for frame in self._conform(await source.recv()):
                    if self._queue.full():
                        self._queue.get_nowait()  # late audio is worse than lost audio
                        self.dropped += 1
                    self._queue.put_nowait(frame)
        except MediaStreamError:
            logger.info("%s: source ended", self.label)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("%s: audio source failed", self.label)

    async def next_frame(self, timeout: float) -> av.AudioFrame:
        """The next relayed frame, or silence if none comes within ``timeout`` seconds."""
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that races a queue item, and then an aiortc sender never stops.
            async with asyncio.timeout(timeout):
                frame = await self._queue.get()
            self.relayed += 1
            return frame
        except TimeoutError:
            self.silent += 1
            return self._silence()

    @staticmethod
    def _silence() -> av.AudioFrame:
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, AUDIO_SAMPLES * 2), np.int16), format="s16", layout="stereo"
        )
        frame.sample_rate = AUDIO_RATE
        return frame

    def _conform(self, frame: av.AudioFrame) -> list[av.AudioFrame]:
        """Frames in the one format the Opus encoder was set up with (it cannot change midway)."""
        if frame.format.name == "s16" and frame.layout.name == "stereo" and frame.sample_rate == AUDIO_RATE:
            return [frame]
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_RATE)
        frame.pts = None
        return self._resampler.resample(frame)


class _PipeOutput(MediaStreamTrack):
    """One connection's outgoing audio: frames from its pipe on a continuous timeline."""

    kind = "audio"

    def __init__(self, pipe: AudioPipe) -> None:
        super().__init__()
        self._pipe = pipe
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        # Silence keeps real time: this frame is due when the timeline says so, and half a
        # frame more absorbs a live source's jitter before silence stands in for it.
        due = self._start + self._pts / AUDIO_RATE
        frame = await self._pipe.next_frame(max(0.0, due - loop.time()) + AUDIO_PTIME / 2)
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, frame.sample_rate)
        self._pts += frame.samples
        return frame
