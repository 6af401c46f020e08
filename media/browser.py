"""Browser-like aiortc peers for tests and benchmarks: what the web client's peer connection does.

:class:`BrowserPeer` lays out its media sections exactly as the web client does, from the
same table (:mod:`media.sections`, docs/protocol.md "WebRTC"), offers after gathering, and
drains everything it receives into sinks a test can look at: the newest decoded video
frame per video section, and the loudness of the audio it hears. Given the ``ice_servers`` and
``ice_transport_policy`` of ``welcome`` / ``logged_in``, it gathers through TURN as a browser does
(without them: host candidates only).
"""

from __future__ import annotations

import asyncio
import fractions
import math
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import av
import numpy as np
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.forward import AUDIO_RATE, AUDIO_SAMPLES
from media.peers import enable_low_latency_receive, negotiated_codec
from media.planes import frame_planes
from media.sections import sections_of

AnswerFn = Callable[[str, str], Awaitable[str]]
IceServers = Sequence[Mapping[str, Any] | RTCIceServer]


def rtc_configuration(
    ice_servers: IceServers = (), ice_transport_policy: str = "all", *, turn_transport: str | None = None
) -> RTCConfiguration:
    """A browser's RTCConfiguration from what ``welcome`` / ``logged_in`` carry.

    ``ice_servers``: RTCIceServer dicts (``urls``, ``username``, ``credential``) or RTCIceServer;
    ``ice_transport_policy``: "all" or "relay". aiortc uses only the first TURN URL it finds
    where a browser tries each; ``turn_transport`` ("udp" or "tcp") keeps only the TURN URLs
    with that transport, for a peer whose network allows just that one (UDP blocked: "tcp").
    Bundled as browsers do (MAX_BUNDLE: with aiortc's default, BALANCED, an offer with two
    video sections keeps the second on a transport the BUNDLE answer then stops).
    """
    servers = [s if isinstance(s, RTCIceServer) else RTCIceServer(**s) for s in ice_servers]
    if turn_transport is not None:
        servers = [_only_turn_over(s, turn_transport) for s in servers]
    return RTCConfiguration(
        iceServers=[s for s in servers if s.urls],
        iceTransportPolicy=RTCIceTransportPolicy(ice_transport_policy),
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )


def _only_turn_over(server: RTCIceServer, transport: str) -> RTCIceServer:
    urls = [server.urls] if isinstance(server.urls, str) else list(server.urls)
    kept = [u for u in urls if not u.startswith("turn") or _turn_transport(u) == transport]
    return RTCIceServer(kept, server.username, server.credential, server.credentialType)


def _turn_transport(url: str) -> str:
    _, _, query = url.partition("?transport=")
    return query or ("tcp" if url.startswith("turns:") else "udp")


class ToneTrack(MediaStreamTrack):
    """A microphone that hums: a sine tone, 20 ms frames of 48 kHz mono, paced in real time."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0, amplitude: int = 8000) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self._samples = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        delay = self._start + self._samples / AUDIO_RATE - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        t = (np.arange(AUDIO_SAMPLES) + self._samples) / AUDIO_RATE
        pcm = (self.amplitude * np.sin(2 * math.pi * self.frequency * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._samples += AUDIO_SAMPLES
        return frame


class VideoSink:
    """What one received video section shows: the newest frame, a count, the darkest frame seen."""

    def __init__(self) -> None:
        self.latest: av.VideoFrame | None = None
        self.count = 0
        self.darkest_mean = 255.0
        self._arrived = asyncio.Event()
        self._changed = asyncio.Event()

    def put(self, frame: av.VideoFrame) -> None:
        frame = frame.reformat(format="yuv420p") if frame.format.name != "yuv420p" else frame
        self.latest = frame
        self.count += 1
        self.darkest_mean = min(self.darkest_mean, float(frame_planes(frame)[0].mean()))
        self._arrived.set()
        self._changed.set()

    async def next_frame(self, timeout: float = 10.0) -> av.VideoFrame:
        """Wait for a frame newer than the one there now, and return it (for one reader)."""
        count = self.count
        while self.count == count:
            self._changed.clear()
            async with asyncio.timeout(timeout):
                await self._changed.wait()
        assert self.latest is not None
        return self.latest

    async def wait(self, timeout: float = 10.0) -> av.VideoFrame:
        """The first frame (waiting for it)."""
        async with asyncio.timeout(timeout):
            await self._arrived.wait()
        assert self.latest is not None
        return self.latest


class AudioSink:
    """What the peer hears: RMS of the last 200 ms."""

    def __init__(self) -> None:
        self._levels: deque[float] = deque(maxlen=10)
        self.frames = 0

    def put(self, frame: av.AudioFrame) -> None:
        pcm = frame.to_ndarray().astype(np.float64)
        self._levels.append(float(np.sqrt(np.mean(pcm**2))) if pcm.size else 0.0)
        self.frames += 1

    def loudness(self) -> float:
        return max(self._levels, default=0.0)


class BrowserPeer:
    """An aiortc peer laid out like the web client's. Build with :meth:`for_role` (or :meth:`agent`,
    :meth:`customer`, :meth:`operator`); the constructor takes any layout, for offers a browser
    would not make."""

    def __init__(
        self,
        role: str,
        sections: list[tuple[str, MediaStreamTrack | None, str]],
        *,
        configuration: RTCConfiguration | None = None,
    ) -> None:
        self.role = role
        self.pc = RTCPeerConnection(configuration or rtc_configuration())
        enable_low_latency_receive(self.pc)
        self.audio = AudioSink()
        self._video_sinks: list[VideoSink] = []
        self._tasks: set[asyncio.Task[None]] = set()
        for kind, track, direction in sections:
            transceiver = self.pc.addTransceiver(track or kind, direction=direction)
            if kind == "video":
                self._video_sinks.append(VideoSink())
            del transceiver

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
            if track.kind == "audio":
                sink: AudioSink | VideoSink = self.audio
            else:
                videos = [t for t in self.pc.getTransceivers() if t.kind == "video"]
                sink = self._video_sinks[videos.index(transceiver)]
            task = asyncio.get_running_loop().create_task(self._drain(track, sink), name=f"{role} sink")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @classmethod
    def for_role(
        cls,
        role: str,
        tracks: Mapping[str, MediaStreamTrack | None] | None = None,
        *,
        last: str | None = None,
        configuration: RTCConfiguration | None = None,
    ) -> BrowserPeer:
        """The role's sections as web_client/js/session.js builds them: in the table's order, the
        direction without a track where the table gives one, ``tracks`` by section name. ``last``
        names the last section to offer (a browser leaves out only a tail); every one by default,
        as a browser that can share a screen does. ``configuration``: see :func:`rtc_configuration`
        (by default no ICE servers: host candidates only)."""
        tracks = dict(tracks or {})
        table = sections_of(role)
        unknown = set(tracks) - {s.name for s in table}
        if unknown:
            raise ValueError(f"{role} has no section {sorted(unknown)[0]!r}")
        layout: list[tuple[str, MediaStreamTrack | None, str]] = []
        for section in table:
            track = tracks.get(section.name)
            direction = section.direction if track else section.direction_without_track or section.direction
            layout.append((section.kind, track if direction != "recvonly" else None, direction))
            if section.name == last:
                break
        return cls(role, layout, configuration=configuration)

    @classmethod
    def agent(
        cls,
        *,
        camera: MediaStreamTrack | None = None,
        screen: MediaStreamTrack | None = None,
        mic: MediaStreamTrack | None = None,
        configuration: RTCConfiguration | None = None,
    ) -> BrowserPeer:
        """Sections: mic, camera (back: the preview), screen, customer_camera, customer_screen."""
        tracks = {"mic": mic, "camera": camera, "screen": screen}
        return cls.for_role("agent", tracks, configuration=configuration)

    @classmethod
    def customer(
        cls,
        *,
        camera: MediaStreamTrack | None = None,
        screen: MediaStreamTrack | None = None,
        mic: MediaStreamTrack | None = None,
        video: bool = True,
        configuration: RTCConfiguration | None = None,
    ) -> BrowserPeer:
        """Sections: mic (back: the agent's voice), camera (back: the composite; receive-only without
        a camera), screen. ``video=False`` offers the mic alone (an offer the server refuses)."""
        tracks = {"mic": mic, "camera": camera, "screen": screen}
        return cls.for_role("customer", tracks, last=None if video else "mic", configuration=configuration)

    @classmethod
    def operator(
        cls,
        *,
        camera: MediaStreamTrack | None = None,
        mic: MediaStreamTrack | None = None,
        configuration: RTCConfiguration | None = None,
    ) -> BrowserPeer:
        """The studio's sections: mic (drives the avatar's mouth), camera (its face; back: the avatar)."""
        return cls.for_role("operator", {"mic": mic, "camera": camera}, configuration=configuration)

    def video(self, index: int) -> VideoSink:
        """The sink of the ``index``-th video section."""
        return self._video_sinks[index]

    def transceiver_count(self) -> int:
        return len(self.pc.getTransceivers())

    def codec(self, index: int) -> str | None:
        videos = [t for t in self.pc.getTransceivers() if t.kind == "video"]
        return negotiated_codec(videos[index])

    async def offer(self) -> str:
        """Create the offer and gather ICE (aiortc gathers in setLocalDescription)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def negotiate(self, answer: AnswerFn) -> None:
        """Offer, have ``answer(role, sdp)`` answer it (the server, or a signalling client), apply it."""
        sdp = await answer(self.role, await self.offer())
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def _drain(self, track: MediaStreamTrack, sink: AudioSink | VideoSink) -> None:
        try:
            while True:
                sink.put(await track.recv())  # type: ignore[arg-type]
        except MediaStreamError:
            pass

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        for transceiver in self.pc.getTransceivers():
            if transceiver.sender.track is not None:
                transceiver.sender.track.stop()
        await self.pc.close()

    async def __aenter__(self) -> BrowserPeer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
