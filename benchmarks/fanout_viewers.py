"""A process of fan-out viewers of the avatar host: WHEP viewers of the server, or Janus's.

    python -m benchmarks.fanout_viewers

reads one JSON command a line on stdin and answers one JSON line on stdout:

- ``{"cmd": "whep", "url": BASE_URL, "count": N, "stamps": bool}``: N viewers POST
  ``/whep/host``; answers once each has its first frame: ``{"ok": true}`` or
  ``{"ok": false, "error"}``;
- ``{"cmd": "janus", "url": JANUS_URL, "stamps": true}``: one viewer of Janus's mountpoint
  through its HTTP API (benchmarks.fanout_janus);
- ``{"cmd": "stats", "t0": WALL_S, "t1": WALL_S}``: per viewer, frames and glass-to-glass
  milliseconds in that window;
- ``{"cmd": "close"}`` (or stdin closing): every viewer closes, the process exits.

A ``stamps`` viewer decodes every frame (aiortc's decoder, frames completed on the marker bit,
as the WHEP and Janus viewers alike) and reads the render-time stamp the server's avatar
writes (:mod:`media.stamp`): glass-to-glass is arrival minus that time, on this machine's one
clock. Any other viewer only counts frames, never decoding them, so a process carries many.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import sys
import time
from typing import Any

import httpx
from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from benchmarks.capacity_media import CountingBuffer, FrameProbe, PacketCounter
from benchmarks.fanout_janus import JanusViewer, SinkPeer
from media import aiortc_internals as internals
from media.stamp import read_stamp

FIRST_FRAME_S = 30.0


class StampSink:
    """Decoded frames' arrival times and glass-to-glass milliseconds (by their stamps)."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.latencies: list[tuple[float, int]] = []
        self.unread = 0  # frames whose stamp did not read (never dropped silently)
        self.first = asyncio.Event()

    def put(self, frame: Any) -> None:
        now = time.time()
        self.arrivals.append(now)
        self.first.set()
        stamp = read_stamp(frame)
        if stamp is None:
            self.unread += 1
        else:
            self.latencies.append((now, stamp.age_ms(now)))

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        frames = bisect.bisect_left(self.arrivals, t1) - bisect.bisect_left(self.arrivals, t0)
        return {"frames": frames, "latencies": [ms for at, ms in self.latencies if t0 <= at < t1]}


class CountSink:
    """Frames counted as they complete, never decoded (benchmarks.capacity_media.FrameProbe)."""

    def __init__(self) -> None:
        self.probe = FrameProbe()
        self.first = asyncio.Event()

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        return {"frames": self.probe.window(t0, t1)["frames"], "latencies": []}


class WhepViewer(SinkPeer):
    """One WHEP viewer of ``/whep/host``: receive-only audio and video."""

    def __init__(self, base_url: str, stamps: bool) -> None:
        super().__init__(low_latency=stamps)  # as JanusViewer: the same receiving code
        self.base_url = base_url
        audio = self.pc.addTransceiver("audio", direction="recvonly")
        video = self.pc.addTransceiver("video", direction="recvonly")
        internals.replace_jitter_buffer(audio.receiver, PacketCounter(is_video=False))
        self.sink: StampSink | CountSink
        if stamps:
            self.sink = StampSink()

            @self.pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                if track.kind == "video":
                    self.read_into(track, self.sink)
        else:
            self.sink = CountSink()
            internals.replace_jitter_buffer(video.receiver, CountingBuffer(self.sink.probe))

    async def open(self) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as http:
            sdp = self.pc.localDescription.sdp
            response = await http.post("/whep/host", content=sdp, headers={"Content-Type": "application/sdp"})
        if response.status_code != 201:
            raise RuntimeError(f"/whep/host: {response.status_code} {response.text.strip()}")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))

    async def first_frame(self) -> None:
        if isinstance(self.sink, StampSink):
            await asyncio.wait_for(self.sink.first.wait(), FIRST_FRAME_S)
            return
        deadline = time.monotonic() + FIRST_FRAME_S
        while not self.sink.probe.arrivals:
            if time.monotonic() > deadline:
                raise TimeoutError("no frame")
            await asyncio.sleep(0.05)


class Viewers:
    """This process's viewers, by path ("whep" or "janus")."""

    def __init__(self) -> None:
        self.viewers: list[tuple[str, Any, Any]] = []  # (path, viewer, sink)

    async def whep(self, url: str, count: int, stamps: bool) -> None:
        opened = [WhepViewer(url, stamps) for _ in range(count)]
        self.viewers += [("whep", v, v.sink) for v in opened]
        await asyncio.gather(*(v.open() for v in opened))
        await asyncio.gather(*(v.first_frame() for v in opened))

    async def janus(self, url: str) -> None:
        sink = StampSink()
        viewer = JanusViewer(url, video=sink)
        self.viewers.append(("janus", viewer, sink))
        await viewer.watch()
        await asyncio.wait_for(sink.first.wait(), FIRST_FRAME_S)

    def stats(self, t0: float, t1: float) -> dict[str, Any]:
        return {
            "viewers": [
                {"path": path, "stamps": isinstance(sink, StampSink), **sink.window(t0, t1)}
                for path, _, sink in self.viewers
            ]
        }

    async def close(self) -> None:
        for _, viewer, _ in self.viewers:
            with contextlib.suppress(Exception):
                await viewer.close()


async def serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    viewers = Viewers()

    def reply(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    try:
        while line := await reader.readline():
            command = json.loads(line)
            cmd = command.get("cmd")
            try:
                if cmd == "whep":
                    await viewers.whep(command["url"], int(command["count"]), bool(command.get("stamps")))
                    reply({"ok": True})
                elif cmd == "janus":
                    await viewers.janus(command["url"])
                    reply({"ok": True})
                elif cmd == "stats":
                    reply({"ok": True, **viewers.stats(float(command["t0"]), float(command["t1"]))})
                elif cmd == "close":
                    break
                else:
                    reply({"ok": False, "error": f"unknown command {cmd!r}"})
            except Exception as exc:
                reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        await viewers.close()
        reply({"ok": True, "closed": True})


if __name__ == "__main__":
    asyncio.run(serve())
