"""AvatarTrack: the avatar as an aiortc video track, a compositor input like a camera.

Paced by its own clock (30 fps by default); each ``recv`` renders the pose for
that frame's time, so whichever drivers are active (face, voice, script) show up
on the next frame. Rendering takes a few milliseconds and runs on the event loop,
as composing does; a late frame is never caught up with a burst.

    track = AvatarTrack(load_spec("aurora"))
    await room.compositor.attach(AVATAR, track)
    room.set_layout("avatar")          # the avatar greets the customer
    track.controller.submit("say Hello! An agent will be with you shortly.", track.now())
    room.set_layout("agent")           # the handoff: a layout change, no renegotiation
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.avatar.controller import AvatarController
from media.avatar.engine import AvatarEngine, BuiltinEngine
from media.avatar.spec import AvatarSpec, load_spec
from media.sources import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE
from media.stamp import Stamp, write_stamp

StampMode = Literal["none", "render", "input"]


class AvatarTrack(MediaStreamTrack):
    """A video track of the avatar.

    Args:
        spec: the look (a spec, a path, or a shipped look's name); ignored when ``engine`` is given.
        engine: any :class:`~media.avatar.engine.AvatarEngine`; by default the built-in one.
        controller: the built-in engine's drivers (made if not given).
        width, height, fps: the frames' size and rate.
        stamp: ``"render"`` writes each frame's render time (:mod:`media.stamp`); ``"input"``
            writes the stamp of the camera frame that last drove the face (glass-to-glass
            from the operator), falling back to the render time; ``"none"`` (default) writes nothing.
        clock: monotonic seconds, the drivers' time base.
        wall_clock: seconds since the epoch, for ``"render"`` stamps.
    """

    kind = "video"

    def __init__(
        self,
        spec: AvatarSpec | str | None = None,
        *,
        engine: AvatarEngine | None = None,
        controller: AvatarController | None = None,
        width: int = 1280,
        height: int = 720,
        fps: float = 30.0,
        stamp: StampMode = "none",
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        if engine is None:
            if spec is None or isinstance(spec, str):
                spec = load_spec(spec or "aurora")
            engine = BuiltinEngine(spec, controller, width=width, height=height)
        self.engine = engine
        self.fps = fps
        self.stamp = stamp
        self._clock = clock
        self._wall_clock = wall_clock
        self._start: float | None = None
        self.frames = 0
        self.render_ms: deque[float] = deque(maxlen=60)  # the last 60 render times (ms)

    @property
    def controller(self) -> AvatarController:
        """The built-in engine's drivers (``AttributeError`` for an external engine)."""
        return self.engine.controller  # type: ignore[attr-defined]

    def now(self) -> float:
        """The track's clock: pass it to commands (``controller.submit(cmd, track.now())``)."""
        return self._clock()

    def set_spec(self, spec: AvatarSpec) -> None:
        """Switch the look from the next frame on (built-in engine)."""
        self.engine.set_spec(spec)  # type: ignore[attr-defined]

    async def recv(self) -> av.VideoFrame:
        """The next frame, at its time."""
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        due = self._start + self.frames / self.fps
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -2 / self.fps:
            self._start = loop.time() - self.frames / self.fps  # far behind: resynchronise, no burst
        if self.readyState != "live":
            raise MediaStreamError
        index = self.frames
        self.frames += 1
        started = time.perf_counter()
        frame = self.render_frame(self._clock())
        if self.stamp != "none":
            stamp = getattr(self.engine, "input_stamp", None) if self.stamp == "input" else None
            write_stamp(frame, stamp or Stamp.now(index, self._wall_clock()))
        frame.pts = round(index / self.fps * VIDEO_CLOCK_RATE)
        frame.time_base = VIDEO_TIME_BASE
        self.render_ms.append((time.perf_counter() - started) * 1000)
        return frame

    def render_frame(self, t: float) -> av.VideoFrame:
        """Render the frame for time ``t`` (synchronous; no pacing, no stamp)."""
        picture = self.engine.render(t)
        if isinstance(picture, av.VideoFrame):
            return picture
        # A fresh frame over the engine's pooled buffer: no copy, no picture type.
        return av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(picture), format="yuv420p")
