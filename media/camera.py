"""A real camera (or any video file or device PyAV opens) as a stamped aiortc video track.

A benchmark that measures glass-to-glass latency with a synthetic card measures no
camera: :class:`CameraTrack` reads a V4L2 device (``/dev/video0``) or a file in a thread
of its own (reads block), converts each picture once to yuv420p at the size asked for,
writes a :mod:`media.stamp` with the moment it was read (the capture time as far as this
machine can know it) and hands the newest to ``recv``: a reader that falls behind gets the
latest picture, never a queue. A file plays at its own frame rate and loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import os
import threading
import time

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.stamp import Stamp, write_stamp

logger = logging.getLogger(__name__)

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
FIRST_FRAME_S = 5.0  # a device or file that gives no picture in this long is unavailable


class CameraUnavailable(RuntimeError):
    """The camera cannot be opened or gives no picture; the message says which and why."""


def _is_device(source: str) -> bool:
    return source.startswith("/dev/")


def _open(source: str, width: int, height: int, fps: float) -> av.container.InputContainer:
    if not os.path.exists(source):
        kind = "device" if _is_device(source) else "file"
        raise CameraUnavailable(
            f"camera {source!r}: no such {kind} (give a V4L2 device such as /dev/video0, "
            "or a video file PyAV can read)"
        )
    try:
        if _is_device(source):
            try:
                options = {"video_size": f"{width}x{height}", "framerate": f"{fps:g}"}
                return av.open(source, format="v4l2", options=options)
            except av.error.FFmpegError:
                return av.open(source, format="v4l2")  # the device's own size and rate
        return av.open(source)
    except (av.error.FFmpegError, OSError) as exc:
        raise CameraUnavailable(f"camera {source!r} cannot be opened: {exc}") from None


class CameraTrack(MediaStreamTrack):
    """Pictures from ``source`` at ``width`` x ``height`` yuv420p, stamped when read.

    Raises :class:`CameraUnavailable` at construction when the source does not open or has
    no video, and from :meth:`first_frame` when it gives no picture.
    """

    kind = "video"

    def __init__(
        self, source: str, *, width: int = 1280, height: int = 720, fps: float = 30.0, stamp: bool = True
    ) -> None:
        super().__init__()
        self.source = source
        self.width, self.height, self.fps = width, height, fps
        self.stamp = stamp
        self._container = _open(source, width, height, fps)
        if not self._container.streams.video:
            self._container.close()
            raise CameraUnavailable(f"camera {source!r} has no video stream")
        self.frames = 0  # pictures read
        self.error: str | None = None
        self._latest: av.VideoFrame | None = None
        self._taken = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._new = asyncio.Event()
        self._thread: threading.Thread | None = None
        self._start: float | None = None

    def describe(self) -> str:
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        return f"{self.source} ({stream.codec_context.name} {stream.width}x{stream.height} @ {rate})"

    async def first_frame(self, timeout: float = FIRST_FRAME_S) -> None:  # noqa: ASYNC109 - a deadline is the point
        """Wait for the first picture; :class:`CameraUnavailable` if none comes."""
        self._ensure_thread()
        try:
            async with asyncio.timeout(timeout):
                while self.frames == 0 and self.error is None:
                    self._new.clear()
                    await self._new.wait()
        except TimeoutError:
            pass
        if self.frames == 0:
            raise CameraUnavailable(
                f"camera {self.source!r} gave no picture: {self.error or f'{timeout:g} s'}"
            )

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        self._ensure_thread()
        while True:
            with self._lock:
                frame, count = self._latest, self.frames
            if frame is not None and count > self._taken:
                break
            if self.error is not None and not (self._thread and self._thread.is_alive()):
                raise MediaStreamError
            self._new.clear()
            await self._new.wait()
            if self.readyState != "live":
                raise MediaStreamError
        self._taken = count
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        frame.pts = max(count - 1, round((loop.time() - self._start) * 90000))
        frame.time_base = VIDEO_TIME_BASE
        return frame

    def stop(self) -> None:
        super().stop()
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        with contextlib.suppress(Exception):
            self._container.close()
        self._wake()

    # -- the reading thread ------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._stop.is_set():
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._read, name=f"camera {self.source}", daemon=True)
            self._thread.start()

    def _wake(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._new.set)

    def _read(self) -> None:
        """Read, convert, stamp, publish; a file is paced at its own rate and loops."""
        stream = self._container.streams.video[0]
        paced = not _is_device(self.source)
        try:
            while not self._stop.is_set():
                started, first_pts = time.monotonic(), None
                for picture in self._container.decode(stream):
                    if self._stop.is_set():
                        return
                    if paced and picture.pts is not None and picture.time_base is not None:
                        first_pts = picture.pts if first_pts is None else first_pts
                        due = started + float((picture.pts - first_pts) * picture.time_base)
                        time.sleep(max(0.0, due - time.monotonic()))
                    self._publish(picture)
                if not paced:
                    self.error = "the device stopped giving pictures"
                    return
                self._container.seek(0)  # a file loops
        except Exception as exc:  # the track reports it; the thread must not die silently
            if not self._stop.is_set():
                self.error = str(exc) or type(exc).__name__
                logger.warning("camera %s: %s", self.source, self.error)
        finally:
            self._wake()

    def _publish(self, picture: av.VideoFrame) -> None:
        read_at = time.time()
        frame = picture.reformat(width=self.width, height=self.height, format="yuv420p", threads=1)
        if frame is picture:  # already the size and format: a frame of our own, the stamp goes in it
            frame = av.VideoFrame.from_ndarray(picture.to_ndarray(), format="yuv420p")
        if self.stamp:
            write_stamp(frame, Stamp.now(self.frames, read_at))
        with self._lock:
            self._latest = frame
            self.frames += 1
        self._wake()
