"""Cheap media for the capacity suite's clients: pre-encoded loops out, frames counted in.

- :func:`encode_video_loop` encodes a stamped test card ONCE (H.264 or VP8, PyAV): frame ``i``
  of the loop carries a :mod:`media.stamp` stamp with frame id ``i``. :func:`encode_opus_loop`
  does the same for a 1 s tone.
- :class:`LoopTrack` hands those packets to aiortc as ``av.Packet`` (aiortc then only
  packetises), paced in real time and looped; it notes the wall time at which each frame
  left it (its *capture* time) and, on a keyframe request, jumps to the next keyframe of the loop.
- :class:`FrameProbe` is given each frame the customer completes: off the wire, as RTP payloads
  (benchmarks.capacity_wire, the capacity clients), or in a receiver as its jitter buffer
  (:class:`CountingBuffer`, the fanout viewers); either way it counts them and never decodes.
  Each frame's glass-to-glass time is its completion minus the ``abs-capture-time`` the server
  put on its first packet (the agent's capture time, from the agent's sender reports).
  A probe made with a decoder also decodes every frame and reads its stamp: the frame id
  names the loop frame, and the agent's own record of when it last sent that frame gives a
  second, independent latency (the check of the first).

aiortc does not parse ``abs-capture-time``: ``media.aiortc_internals.read_abs_capture_time``
makes a transport read it (the id is the one :func:`offer_abs_capture_time` adds to the
offer, which the server echoes).
"""

from __future__ import annotations

import asyncio
import bisect
import fractions
import math
import pickle
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from aiortc.codecs import depayload
from aiortc.codecs.h264 import H264Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from media.capture_clock import CaptureTimes, ntp_seconds
from media.peers import MarkerJitterBuffer
from media.sources import TestCardTrack
from media.stamp import luma_view, read_stamp, strip_height

FPS = 30
LOOP_FRAMES = 300  # 10 s of video, looped
GOP = 60  # a keyframe every 2 s: what a keyframe request jumps to
VIDEO_BPS = {720: 2_000_000, 360: 700_000}  # about what Chromium sends a 720p / 360p camera at
ABS_CAPTURE_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"
ABS_CAPTURE_TIME_ID = 14  # aiortc's own offers use ids 1-3
CHECK_FRAMES = 150  # frames a check call decodes (from its start) to compare stamps and the clock


@dataclass
class EncodedLoop:
    """Encoded frames of a loop, in order, and which of them are keyframes."""

    codec: str  # "H264", "VP8", "OPUS"
    frames: list[bytes]
    keyframes: list[int] = field(default_factory=list)
    width: int = 0
    height: int = 0

    def save(self, path: Path) -> None:
        path.write_bytes(pickle.dumps(self))

    @staticmethod
    def load(path: Path) -> EncodedLoop:
        return pickle.loads(path.read_bytes())


async def encode_video_loop(codec: str, width: int, height: int, frames: int = LOOP_FRAMES) -> EncodedLoop:
    """A stamped, moving test card encoded once: H.264 (x264, constrained baseline, no B-frames) or VP8."""
    card = TestCardTrack(width, height, fps=FPS, paced=False, stamp=True, label="agent")
    if codec == "H264":
        ctx = av.CodecContext.create("libx264", "w")
        ctx.options = {
            "preset": "veryfast",
            "tune": "zerolatency",
            "level": "31",
            "x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0",
        }
        ctx.profile = "Baseline"
    elif codec == "VP8":
        ctx = av.CodecContext.create("libvpx", "w")
        ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        ctx.gop_size = GOP
    else:
        raise ValueError(f"no loop encoder for {codec}")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.bit_rate = VIDEO_BPS[360 if height <= 360 else 720]
    ctx.framerate = fractions.Fraction(FPS, 1)
    ctx.time_base = fractions.Fraction(1, FPS)
    loop = EncodedLoop(codec, [], [], width, height)
    # Sensor noise, so the encoder spends about a real camera's bits (a clean card takes ~0.3 Mbps).
    rng = np.random.default_rng(11)
    noise = [rng.integers(-6, 7, (height - strip_height(width), width), dtype=np.int16) for _ in range(7)]
    for index in range(frames):
        frame = await card.recv()
        below = luma_view(frame)[strip_height(width) :]
        below[:] = np.clip(below + noise[index % len(noise)], 16, 235).astype(np.uint8)
        frame.pts, frame.time_base = index, ctx.time_base
        frame.pict_type = av.video.frame.PictureType.I if index == 0 else av.video.frame.PictureType.NONE
        for packet in ctx.encode(frame):
            if packet.is_keyframe:
                loop.keyframes.append(len(loop.frames))
            loop.frames.append(bytes(packet))
    for packet in ctx.encode(None):
        loop.frames.append(bytes(packet))
    card.stop()
    if len(loop.frames) != frames or not loop.keyframes or loop.keyframes[0] != 0:
        raise RuntimeError(f"{codec} loop: {len(loop.frames)} frames, keyframes {loop.keyframes[:3]}")
    return loop


def encode_opus_loop(frequency: float = 440.0, seconds: float = 1.0) -> EncodedLoop:
    """A quiet tone as 20 ms Opus packets (48 kHz stereo, as aiortc's Opus encoder sends)."""
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate, ctx.layout, ctx.format, ctx.bit_rate = 48000, "stereo", "s16", 32000
    packets: list[bytes] = []
    samples = 960
    for index in range(int(seconds * 50)):
        t = (np.arange(samples) + index * samples) / 48000
        tone = (3000 * np.sin(2 * math.pi * frequency * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(tone, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 48000, index * samples, fractions.Fraction(1, 48000)
        packets.extend(bytes(p) for p in ctx.encode(frame))
    return EncodedLoop("OPUS", packets)


def frame_key(codec: str, data: bytes) -> int:
    """A frame's identity by content: H.264 by its NAL units (start codes differ after aiortc's
    depayloader), anything else by its bytes. A received frame with the key of a loop frame is
    the agent's own frame, forwarded by the server as it came."""
    if codec == "H264":
        return hash(tuple(unit for unit in _START_CODE.split(data) if unit))
    return hash(data)


_START_CODE = re.compile(b"\x00\x00\x00?\x01")
_DEPAYLOADERS = {
    "H264": RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000),
    "VP8": RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000),
}


def payloads_key(codec: str, payloads: list[bytes]) -> int:
    """A frame's identity by its RTP payloads: H.264's as cut (the server and the agent cut the
    same NAL units with the same packetizer), VP8's past the payload descriptor (its picture id
    is each sender's own)."""
    if codec == "H264":
        return hash(b"".join(payloads))
    return hash(b"".join(depayload(_DEPAYLOADERS[codec], p) for p in payloads))


def loop_payloads_keys(loop: EncodedLoop) -> set[int]:
    """:func:`payloads_key` of each frame of ``loop`` as aiortc's packetizer cuts it."""
    if loop.codec != "H264":
        return {hash(data) for data in loop.frames}
    packer = H264Encoder()
    keys = set()
    for data in loop.frames:
        packet = av.Packet(data)
        packet.pts, packet.time_base = 0, fractions.Fraction(1, 90000)
        keys.add(hash(b"".join(packer.pack(packet)[0])))
    return keys


class LoopTrack(MediaStreamTrack):
    """Pre-encoded packets for aiortc's packet path, paced in real time, looped.

    A video track waits in ``recv`` until :meth:`play` gives it the loop of the codec the
    server answered with. ``capture_times`` (pts -> wall time the packet left here) feeds
    the sender's reports (media.capture_clock.align_sender_reports); ``sent_at[i]`` is when
    loop frame ``i`` last left.
    """

    def __init__(self, kind: str, loop: EncodedLoop | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.clock_rate, self.interval = (90000, 1 / FPS) if kind == "video" else (48000, 0.02)
        self.capture_times = CaptureTimes()
        self.sent_at: dict[int, float] = {}
        self.sent_times: list[float] = []  # wall time of every packet handed out (for the send rate)
        self.keyframe_wanted = False
        self.slips = 0  # times the pacing fell more than two intervals behind (a loaded client)
        self._loop = loop
        self._position = 0
        self._count = 0
        self._start: float | None = None

    def play(self, loop: EncodedLoop) -> None:
        self._loop = loop

    async def recv(self) -> av.Packet:
        while self._loop is None:
            if self.readyState != "live":
                raise MediaStreamError
            await asyncio.sleep(0.02)
        if self.readyState != "live":
            raise MediaStreamError
        clock = asyncio.get_running_loop()
        if self._start is None:
            self._start = clock.time()
        delay = self._start + self._count * self.interval - clock.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -2 * self.interval:
            self.slips += 1
            self._start = clock.time() - self._count * self.interval
        loop = self._loop
        if self.keyframe_wanted and loop.keyframes:
            self.keyframe_wanted = False
            later = [k for k in loop.keyframes if k >= self._position]
            self._position = later[0] if later else loop.keyframes[0]
        index = self._position
        self._position = (index + 1) % len(loop.frames)
        packet = av.Packet(loop.frames[index])
        packet.pts = round(self._count * self.interval * self.clock_rate)
        packet.time_base = fractions.Fraction(1, self.clock_rate)
        self._count += 1
        now = time.time()
        self.capture_times.note(packet.pts, now)
        self.sent_at[index] = now
        self.sent_times.append(now)
        return packet

    def prune(self, before: float) -> None:
        del self.sent_times[: bisect.bisect_left(self.sent_times, before)]


def offer_abs_capture_time(sdp: str) -> str:
    """The offer with abs-capture-time offered in every video section (aiortc does not offer it)."""
    line = f"a=extmap:{ABS_CAPTURE_TIME_ID} {ABS_CAPTURE_TIME_URI}\r\n"
    parts = re.split(r"(?=^m=)", sdp, flags=re.M)
    out = []
    for part in parts:
        if part.startswith("m=video") and ABS_CAPTURE_TIME_URI not in part:
            extmaps = list(re.finditer(r"^a=extmap:.*\r\n", part, flags=re.M))
            at = extmaps[-1].end() if extmaps else len(part)
            part = part[:at] + line + part[at:]
        out.append(part)
    return "".join(out)


class FrameProbe:
    """What one customer receives: when each frame completed, and its glass-to-glass time."""

    def __init__(self, codec: str | None = None, sent_at: dict[int, float] | None = None) -> None:
        self.arrivals: list[float] = []
        self.latencies: list[tuple[float, float]] = []  # (arrival, ms) by abs-capture-time
        self.stamped: list[tuple[float, float, float]] = []  # (arrival, stamp ms, abs ms) when decoding
        self.by_stamp: list[tuple[float, float]] = []  # (arrival, ms) by stamp alone, when decoding
        self._decode_left = 0
        self.forwarded: list[float] = []  # arrivals of frames that are the agent's own, as sent
        self.known: set[int] = set()  # frame_key of every loop frame
        self.known_payloads: set[int] = set()  # payloads_key of every loop frame
        self.codec = ""
        self._captured: OrderedDict[int, int] = OrderedDict()
        self._sent_at = sent_at
        self._decoder = None
        if codec is not None:
            self.decode_as(codec)

    def knows(self, codec: str, loop: EncodedLoop) -> None:
        """Count the frames that are ``loop``'s own, arriving as ``codec``."""
        self.codec = codec
        same = codec == loop.codec
        self.known = {frame_key(loop.codec, data) for data in loop.frames} if same else set()
        self.known_payloads = loop_payloads_keys(loop) if same else set()

    def decode_as(self, codec: str, frames: int = CHECK_FRAMES) -> None:
        """Decode the next ``frames`` frames to read their stamps (a fresh decoder: from a keyframe)."""
        self._decoder = av.CodecContext.create("h264" if codec == "H264" else "vp8", "r")
        self._decode_left = frames

    def on_packet(self, packet: RtpPacket) -> None:
        captured = getattr(packet.extensions, "abs_capture_time", None)
        if captured is not None:
            self._captured[packet.timestamp] = captured
            if len(self._captured) > 64:
                self._captured.popitem(last=False)

    def on_frame(self, frame: JitterFrame) -> None:
        now = time.time()
        self.arrivals.append(now)
        captured = self._captured.pop(frame.timestamp, None)
        latency = (now - ntp_seconds(captured)) * 1000 if captured is not None else None
        if latency is not None:
            self.latencies.append((now, latency))
        if self.known and frame_key(self.codec, frame.data) in self.known:
            self.forwarded.append(now)
        if self._decoder is not None and self._sent_at is not None:
            self._check_stamp(frame.data, now, latency)

    def on_wire_frame(self, timestamp: int, payloads: list[bytes], captured: int | None, now: float) -> None:
        """A frame completed off the wire (benchmarks.capacity_wire.FrameAssembler)."""
        self.arrivals.append(now)
        latency = (now - ntp_seconds(captured)) * 1000 if captured is not None else None
        if latency is not None:
            self.latencies.append((now, latency))
        if self.known_payloads and payloads_key(self.codec, payloads) in self.known_payloads:
            self.forwarded.append(now)
        if self._decoder is not None and self._sent_at is not None and self.codec in _DEPAYLOADERS:
            codec = _DEPAYLOADERS[self.codec]
            self._check_stamp(b"".join(depayload(codec, p) for p in payloads), now, latency)

    def _check_stamp(self, data: bytes, now: float, latency: float | None) -> None:
        try:
            pictures = self._decoder.decode(av.Packet(data))
        except av.error.FFmpegError:
            return  # a frame before the first keyframe
        self._decode_left -= 1
        if self._decode_left <= 0:
            # Enough to check the clock: a 720p decode costs ~2-4 ms of this process's event loop,
            # which other calls' packets share.
            self._decoder = None
        for picture in pictures:
            stamp = read_stamp(picture)
            sent = self._sent_at.get(stamp.frame_id) if stamp is not None else None
            if sent is not None:
                self.by_stamp.append((now, (now - sent) * 1000))
                if latency is not None:
                    self.stamped.append((now, (now - sent) * 1000, latency))

    def window(self, t0: float, t1: float) -> dict:
        """Frames and latencies that completed in [t0, t1)."""
        frames = bisect.bisect_left(self.arrivals, t1) - bisect.bisect_left(self.arrivals, t0)
        latencies = [ms for at, ms in self.latencies if t0 <= at < t1]
        stamped = [(s, a) for at, s, a in self.stamped if t0 <= at < t1]
        forwarded = bisect.bisect_left(self.forwarded, t1) - bisect.bisect_left(self.forwarded, t0)
        by_stamp = [ms for at, ms in self.by_stamp if t0 <= at < t1]
        return {
            "frames": frames,
            "forwarded": forwarded,
            "latencies": latencies,
            "stamped": stamped,
            "by_stamp": by_stamp,
        }

    def prune(self, before: float) -> None:
        del self.arrivals[: bisect.bisect_left(self.arrivals, before)]
        del self.forwarded[: bisect.bisect_left(self.forwarded, before)]
        self.latencies = [x for x in self.latencies if x[0] >= before]
        self.stamped = [x for x in self.stamped if x[0] >= before]
        self.by_stamp = [x for x in self.by_stamp if x[0] >= before]


class CountingBuffer(MarkerJitterBuffer):
    """A video jitter buffer that completes frames on the marker bit, gives them to a
    :class:`FrameProbe` and keeps them from aiortc's decoder."""

    def __init__(self, probe: FrameProbe) -> None:
        super().__init__(capacity=128, is_video=True)
        self.probe = probe

    def add(self, packet: RtpPacket) -> tuple[bool, None]:  # type: ignore[override]
        self.probe.on_packet(packet)
        pli, frame = super().add(packet)
        if frame is not None:
            self.probe.on_frame(frame)
        return pli, None


class PacketCounter(JitterBuffer):
    """A jitter buffer that only counts packets (audio heard, a preview not looked at): no decode."""

    def __init__(self, is_video: bool) -> None:
        super().__init__(capacity=128 if is_video else 16, is_video=is_video)
        self.times: list[float] = []

    def add(self, packet: RtpPacket) -> tuple[bool, None]:  # type: ignore[override]
        self.times.append(time.time())
        return False, None

    def rate(self, t0: float, t1: float) -> float:
        count = bisect.bisect_left(self.times, t1) - bisect.bisect_left(self.times, t0)
        return count / (t1 - t0)

    def prune(self, before: float) -> None:
        del self.times[: bisect.bisect_left(self.times, before)]
