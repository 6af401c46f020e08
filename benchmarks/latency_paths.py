"""The latency suite's paths, built alike, and the final receiver's record of every frame.

Every path ends in the SAME final receiver: an aiortc peer connection completing frames on
the RTP marker bit (media.peers.enable_low_latency_receive), aiortc's decoder, and a drain
that hands each decoded frame to a :class:`StampLog` before anything else. Every encoder on
every path is the one the server uses (media.peers: SafeVp8Encoder / FastH264Encoder) with
the same bitrate range, the agent's camera included; every path carries the same content
(the agent's camera, full frame). :func:`describe_receiver` and :func:`describe_encoder`
report what each path was built with, so a reader (and a test) can check it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCRtpReceiver
from aiortc.mediastreams import MediaStreamTrack

from benchmarks.progress import progress
from media import aiortc_internals as internals
from media.browser import BrowserPeer
from media.peers import Bitrate, negotiated_codec, tune_video_sender
from media.room import Room
from media.stamp import ID_BITS, read_stamp
from media.testing import LoopbackCall
from media.tracks import FrameSlot

# aiortc's own VP8 clamp and our start: the server's range, now every path's.
BITRATE = Bitrate(start=1_000_000, min=500_000, max=3_000_000)
REFRESH_TICKS = 90000 // 60  # one 60 Hz display refresh on the 90 kHz RTP clock
Camera = Callable[[], MediaStreamTrack]
ID_MODULO = 1 << ID_BITS


class StampClock:
    """A camera's clock for its stamps that remembers when it stamped each frame: the n-th call
    is frame n's capture time (a synthetic source asks its clock once per stamped frame).

    A stamp carries whole milliseconds, so an age read from it alone is off by up to 1 ms
    either way; with every path's camera and final receiver in this one process, the receiver
    looks the frame's exact capture time up instead (stamp frame ids are the index mod 2**16)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.times: list[float] = []

    def __call__(self) -> float:
        now = self._clock()
        self.times.append(now)
        return now

    def of(self, frame_id: int) -> float | None:
        """The capture time of the latest frame with ``frame_id`` (None: not one of ours)."""
        if frame_id >= len(self.times):
            return None
        last = len(self.times) - 1
        return self.times[frame_id + (last - frame_id) // ID_MODULO * ID_MODULO]


class StampLog:
    """Each decoded frame the final receiver hands over while recording: its stamp's frame id
    and age, or counted as unstamped (an unreadable stamp, or a composite made on the
    compositor's fallback clock while the camera stalled: both carry no readable stamp).

    The age is to the exact capture time when the camera kept them (``captures``, a test card:
    counted in ``exact``), else the stamp's whole milliseconds (a real camera)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: list[tuple[float, int, float]] = []  # (seconds into the recording, frame id, ms)
        self.unstamped = 0
        self.exact = 0
        self.captures: StampClock | None = None
        self._start: float | None = None
        # RTP timestamp steps from one new camera picture (a stamped frame) to the next, and those
        # under one 60 Hz display refresh: a browser shows one frame a refresh, so it decodes such
        # a pair and shows one. A repeat between them (the compositor's clock) is not one.
        self.steps = 0
        self.close_steps = 0
        self._last_pts: int | None = None

    def camera(self, make: Camera) -> MediaStreamTrack:
        """A camera from ``make``, whose capture times (if it keeps them) this log reads."""
        track = make()
        self.captures = getattr(track, "captures", None)
        return track

    def begin(self) -> None:
        self._start = time.monotonic()

    def end(self) -> None:
        self._start = None
        self._last_pts = None

    def close_spaced_pct(self) -> float | None:
        """Percent of new camera pictures stamped less than one 60 Hz refresh after the one before."""
        return round(100 * self.close_steps / self.steps, 2) if self.steps else None

    def record(self, frame: Any) -> None:
        if self._start is None:
            return
        now = time.time()
        stamp = read_stamp(frame)
        if stamp is None:
            self.unstamped += 1
            return
        if frame.pts is not None:
            if self._last_pts is not None:
                self.steps += 1
                self.close_steps += frame.pts - self._last_pts < REFRESH_TICKS
            self._last_pts = frame.pts
        captured = self.captures.of(stamp.frame_id) if self.captures is not None else None
        if captured is not None and abs((now - captured) * 1000 - stamp.age_ms(now)) <= 1:
            ms = (now - captured) * 1000
            self.exact += 1
        else:  # a real camera's, or a frame from before its captures were kept
            ms = float(stamp.age_ms(now))
        self.rows.append((time.monotonic() - self._start, stamp.frame_id, ms))

    @property
    def latencies(self) -> list[float]:
        return [ms for _, _, ms in self.rows]

    def counts(self) -> dict[str, int]:
        """``expected``: the camera frames sent between the first and the last one read (frame
        ids run on by one a frame); ``measured``: those read with a stamp. The difference is
        frames lost, dropped in a slot or unreadable. ``exact``: ages read to the exact capture time."""
        ids = sorted({frame_id for _, frame_id, _ in self.rows})
        expected = ids[-1] - ids[0] + 1 if ids else 0
        return {"expected": expected, "measured": len(ids), "unstamped": self.unstamped, "exact": self.exact}


class _RecordingSlot(FrameSlot):
    """A LoopbackCall's slot that shows each frame to a log as the drain puts it."""

    def __init__(self, log: StampLog) -> None:
        super().__init__(log.name)
        self.log = log

    def put(self, frame: Any) -> None:
        self.log.record(frame)
        super().put(frame)


def _record_sink(peer: BrowserPeer, index: int, log: StampLog) -> None:
    """Show each frame the peer's drain puts into video sink ``index`` to ``log`` first (the
    same moment a LoopbackCall's drain puts it into its slot)."""
    sink = peer.video(index)
    put = sink.put

    def recorded(frame: Any) -> None:
        log.record(frame)
        put(frame)

    sink.put = recorded  # type: ignore[method-assign]


def describe_receiver(receiver: RTCRtpReceiver, codec: str | None) -> dict[str, Any]:
    buffer = internals.jitter_buffer(receiver)
    return {"receiver": type(buffer).__name__ if buffer is not None else None, "codec": codec}


def describe_encoder(encoder: Any) -> dict[str, Any]:
    """The media.peers encoder class the encoder is (or derives from), and its bitrate range."""
    base = next((c.__name__ for c in type(encoder).__mro__ if c.__module__ == "media.peers"), None)
    bitrate = getattr(encoder, "bitrate", None)
    return {
        "encoder": base or type(encoder).__name__,
        "bitrate": [bitrate.start, bitrate.min, bitrate.max] if bitrate is not None else None,
    }


@dataclass
class PathResult:
    name: str
    log: StampLog
    config: dict[str, Any] = field(default_factory=dict)
    receipt: dict[str, Any] = field(default_factory=dict)  # the server's stages, when a server ran
    slot_dropped: dict[str, int] = field(default_factory=dict)


async def _record(log: StampLog, seconds: float, desc: str) -> None:
    log.begin()
    for _ in progress(range(int(seconds * 10)), desc=desc):
        await asyncio.sleep(0.1)
    log.end()


async def direct(name: str, camera: Camera, codec: str, seconds: float, warmup: float) -> PathResult:
    """The agent's camera straight to the customer's receiver: two aiortc peers, no server."""
    log = StampLog(name)
    call = LoopbackCall(
        [log.camera(camera)], codec=codec, bitrate=BITRATE, into=[_RecordingSlot(log)], label=name
    )
    async with call:
        await call.wait_frames(1, timeout=15)
        await asyncio.sleep(warmup)
        await _record(log, seconds, name)
        sender = call.sender.getTransceivers()[0]
        receiver = call.receiver.getTransceivers()[0]
        config = {
            **describe_receiver(receiver.receiver, negotiated_codec(receiver)),
            **describe_encoder(internals.encoder(sender.sender)),
            "hops": 1,
        }
    return PathResult(name, log, config)


async def relay(name: str, camera: Camera, seconds: float, warmup: float) -> PathResult:
    """Through a plain one-hop relay: it decodes the camera and encodes it again, its receiver and
    encoder configured as the final ones (marker-bit completion; the server's encoder and range)."""
    log = StampLog(name)
    into_relay = LoopbackCall([log.camera(camera)], bitrate=BITRATE, drain=False, label=f"{name}-in")
    async with into_relay:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not into_relay.received and loop.time() < deadline:  # noqa: ASYNC110 - set by a callback
            await asyncio.sleep(0.01)
        out = LoopbackCall(
            into_relay.received[:1], bitrate=BITRATE, into=[_RecordingSlot(log)], label=f"{name}-out"
        )
        async with out:
            await out.wait_frames(1, timeout=15)
            await asyncio.sleep(warmup)
            await _record(log, seconds, name)
            receiver = out.receiver.getTransceivers()[0]
            middle = into_relay.receiver.getTransceivers()[0].receiver
            config = {
                **describe_receiver(receiver.receiver, negotiated_codec(receiver)),
                **describe_encoder(internals.encoder(out.sender.getTransceivers()[0].sender)),
                "middle_receiver": describe_receiver(middle, None)["receiver"],
                "hops": 2,
            }
    return PathResult(name, log, config)


async def server(
    name: str,
    camera: Camera,
    codec: str,
    seconds: float,
    warmup: float,
    *,
    layout: str = "agent",
    screen: MediaStreamTrack | None = None,
) -> PathResult:
    """The real server path: a browser-like agent peer -> media.room.Room -> a browser-like customer.

    Layout ``agent`` with the camera's passthrough off: the server decodes the camera, composes it
    full frame and encodes it (the work a composite costs), so the customer gets what a direct
    call shows. Other layouts (``screen``, with ``screen``) are the real call's content.
    """
    log = StampLog(name)
    room = Room(label=name, agent_name="Agent", size="720p", codec=codec, bitrate=BITRATE)
    room.set_layout(layout)
    room.passthrough.eligible = lambda: False  # compose and encode every frame, as the floor does
    agent = BrowserPeer.agent(camera=log.camera(camera), screen=screen)
    senders = [
        t.sender for t in agent.pc.getTransceivers() if t.kind == "video" and t.sender.track is not None
    ]
    for sender in senders:
        tune_video_sender(sender, BITRATE)  # the agent's camera (and screen): every path's encoder and range
    camera_sender = senders[0]  # the camera section comes before the screen's (media.sections)
    customer = BrowserPeer.customer()
    _record_sink(customer, 0, log)
    try:
        async with agent, customer:
            await agent.negotiate(room.answer)
            await customer.negotiate(room.answer)
            await customer.video(0).wait(15)
            await asyncio.sleep(warmup)
            await _record(log, seconds, name)
            videos = [t for t in customer.pc.getTransceivers() if t.kind == "video"]
            server_encoder, agent_encoder = room.encoders.get(codec.upper()), internals.encoder(camera_sender)
            config = {
                **describe_receiver(videos[0].receiver, customer.codec(0)),
                **describe_encoder(server_encoder),
                "agent_encoder": describe_encoder(agent_encoder),
                # Where the estimates (REMB) had taken both encoders by the end: the floor encodes
                # at these, so its work is the path's.
                "target_bps": {
                    "agent": getattr(agent_encoder, "target_bitrate", None),
                    "server": getattr(server_encoder, "target_bitrate", None),
                },
                "layout": layout,
                "hops": 2,
            }
    finally:
        await room.close()
    compositor = room.compositor
    dropped = {slot_name: slot.dropped for slot_name, slot in compositor.slots.items()}
    return PathResult(name, log, config, compositor.receipt.summary(), dropped)
