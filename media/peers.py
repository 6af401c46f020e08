"""aiortc helpers: codec preferences and encoder settings (the receive side: media.receive).

Two fixes for costs measured in aiortc 1.16 (DESIGN, "Frame path and latency budget"):

- **H.264 preset.** aiortc's ``H264Encoder`` sets no x264 preset, so x264 runs
  "medium" (~16 ms a 720p frame). :class:`FastH264Encoder` uses ultrafast + zerolatency.
- **VP8 picture type.** aiortc's ``Vp8Encoder`` never resets ``pict_type``, so a frame
  tagged I (a decoded keyframe being relayed) forces a keyframe. :class:`SafeVp8Encoder`
  resets it. Both encoders take a :class:`Bitrate` range instead of aiortc's fixed
  0.5-3 Mbps clamp.

:func:`tune_video_sender` installs these encoders into one ``RTCRtpSender``.
"""

from __future__ import annotations

import contextlib
import fractions
import logging
import time
import weakref
from collections.abc import Iterator

import av
from aiortc import RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs.h264 import MAX_FRAME_RATE, H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from media import aiortc_internals as internals
from media.bitrate import Bitrate, RateGovernor
from media.receipt import LatencyReceipt

# The receive side lived here; callers still import it from here.
from media.receive import RETRANSMISSION_HISTORY, MarkerJitterBuffer, enable_low_latency_receive  # noqa: F401

logger = logging.getLogger(__name__)

CODECS = ("VP8", "H264")
# x264's rate buffer (VBV), in seconds of the bitrate: no frame is larger. libwebrtc holds a
# keyframe to ~9 frames' worth at 30 fps (0.3 s); a 1 Mbps bottleneck's queue holds ~0.3 s.
KEYFRAME_BUDGET_S = 0.3


# -- send: encoders ----------------------------------------------------------


@contextlib.contextmanager
def _timed(receipt: LatencyReceipt | None) -> Iterator[None]:
    """Record the block's duration as the receipt's ``encode`` stage (aiortc encodes in an
    executor thread; a deque append is safe from there)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        if receipt is not None:
            receipt.record("encode", (time.perf_counter() - started) * 1000)


class SafeVp8Encoder(Vp8Encoder):
    """aiortc's VP8 encoder, with the picture type reset and a governed bitrate (media.bitrate)."""

    def __init__(self, bitrate: Bitrate | None = None) -> None:
        super().__init__()
        self.bitrate = bitrate or Bitrate()
        self.governor = RateGovernor(self.bitrate)
        internals.set_vp8_bitrate(self, self.governor.running)

    @property  # type: ignore[override]
    def target_bitrate(self) -> int:
        return internals.vp8_bitrate(self)

    @target_bitrate.setter
    def target_bitrate(self, value: int) -> None:
        # The sender sets every REMB estimate here; the base class recreates the codec (a
        # keyframe) when this moves by 10 %, so only the governor's decisions get through.
        internals.set_vp8_bitrate(self, self.governor.estimate(value, time.monotonic()))

    receipt: LatencyReceipt | None = None

    def encode(self, frame: av.Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        if not force_keyframe and isinstance(frame, av.VideoFrame):
            # A relayed keyframe arrives tagged I: without this, every such frame is re-encoded
            # as a keyframe (2-4x the bits).
            frame.pict_type = av.video.frame.PictureType.NONE
        with _timed(self.receipt):
            payloads, timestamp = super().encode(frame, force_keyframe)
        self.governor.sent(sum(map(len, payloads)), time.monotonic())
        return payloads, timestamp


class FastH264Encoder(H264Encoder):
    """aiortc's H.264 encoder with x264 ultrafast + zerolatency (~2-3.5 ms a 720p frame, not ~16)."""

    def __init__(self, bitrate: Bitrate | None = None, preset: str = "ultrafast") -> None:
        super().__init__()
        self.bitrate = bitrate or Bitrate()
        self.preset = preset
        self.governor = RateGovernor(self.bitrate)
        internals.set_h264_bitrate(self, self.governor.running)

    @property  # type: ignore[override]
    def target_bitrate(self) -> int:
        return internals.h264_bitrate(self)

    @target_bitrate.setter
    def target_bitrate(self, value: int) -> None:
        internals.set_h264_bitrate(self, self.governor.estimate(value, time.monotonic()))

    receipt: LatencyReceipt | None = None

    def encode(self, frame: av.Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        with _timed(self.receipt):
            payloads, timestamp = super().encode(frame, force_keyframe)
        self.governor.sent(sum(map(len, payloads)), time.monotonic())
        return payloads, timestamp

    def _encode_frame(self, frame: av.VideoFrame, force_keyframe: bool) -> Iterator[bytes]:
        # The stock method builds its codec inline, so the codec set-up is repeated here with
        # a preset; the rest (bitstream splitting, packetisation) is inherited.
        if self.codec and (
            frame.width != self.codec.width
            or frame.height != self.codec.height
            or abs(self.target_bitrate - self.codec.bit_rate) / self.codec.bit_rate > 0.1
        ):
            self.buffer_data = b""
            self.buffer_pts = None
            self.codec = None
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p", threads=1)
        frame.pict_type = av.video.frame.PictureType.I if force_keyframe else av.video.frame.PictureType.NONE
        if self.codec is None:
            self.codec = av.CodecContext.create("libx264", "w")
            self.codec.width = frame.width
            self.codec.height = frame.height
            self.codec.bit_rate = self.target_bitrate
            self.codec.pix_fmt = "yuv420p"
            self.codec.framerate = fractions.Fraction(MAX_FRAME_RATE, 1)
            self.codec.time_base = fractions.Fraction(1, MAX_FRAME_RATE)
            self.codec.options = {
                "level": "31",
                "preset": self.preset,
                "tune": "zerolatency",
                # A frame at most KEYFRAME_BUDGET_S of the rate: x264 alone made noisy 720p
                # keyframes of 70-95 KB at 1 Mbps (20x a frame), which a slow link's queue drops.
                "maxrate": str(self.target_bitrate),
                "bufsize": str(int(self.target_bitrate * KEYFRAME_BUDGET_S)),
            }
            self.codec.profile = "Baseline"
        data = b"".join(bytes(packet) for packet in self.codec.encode(frame))
        if data:
            yield from self._split_bitstream(data)


def make_video_encoder(
    codec: RTCRtpCodecParameters, bitrate: Bitrate | None = None, receipt: LatencyReceipt | None = None
) -> SafeVp8Encoder | FastH264Encoder:
    """The tuned encoder for a negotiated video codec; with a ``receipt``, it records each encode's time."""
    name = codec.mimeType.lower()
    if name == "video/vp8":
        encoder: SafeVp8Encoder | FastH264Encoder = SafeVp8Encoder(bitrate)
    elif name == "video/h264":
        encoder = FastH264Encoder(bitrate)
    else:
        raise ValueError(f"no tuned encoder for {codec.mimeType}")
    encoder.receipt = receipt
    return encoder


def tune_video_sender(
    sender: RTCRtpSender, bitrate: Bitrate | None = None, receipt: LatencyReceipt | None = None
) -> None:
    """Make ``sender`` encode with :class:`SafeVp8Encoder` / :class:`FastH264Encoder`.

    The encoder is chosen when the first frame is sent, for whichever codec was
    negotiated, so this can be called any time before media flows (after ``addTrack``).
    With a ``receipt``, every frame's encode time is recorded in it (stage ``encode``).
    """
    if getattr(sender, "_media_tuned", False):
        return
    # The sender keeps the wrapper, so the wrapper must not keep the sender: that cycle held
    # closed senders until the cyclic GC ran.
    own = weakref.ref(sender)

    def wrap(next_encoded_frame):
        async def with_tuned_encoder(codec: RTCRtpCodecParameters):
            sender = own()
            # aiortc creates its encoder lazily in this step (and drops it when RTP stops);
            # ours is put in place just before.
            if (
                sender is not None
                and internals.encoder(sender) is None
                and codec.mimeType.lower() in ("video/vp8", "video/h264")
            ):
                internals.set_encoder(sender, make_video_encoder(codec, bitrate, receipt))
            return await next_encoded_frame(codec)

        return with_tuned_encoder

    internals.wrap_next_encoded_frame(sender, wrap)
    sender._media_tuned = True  # type: ignore[attr-defined]


# -- negotiation --------------------------------------------------------------


def prefer_codec(transceiver: RTCRtpTransceiver, name: str) -> None:
    """Offer (or answer with) video codec ``name`` ("VP8" or "H264") first, the others after it."""
    if name.upper() not in CODECS:
        raise ValueError(f"unknown video codec {name!r}: use one of {CODECS}")
    codecs = RTCRtpSender.getCapabilities("video").codecs
    first = [c for c in codecs if c.mimeType.upper() == f"VIDEO/{name.upper()}"]
    rest = [c for c in codecs if c not in first]
    transceiver.setCodecPreferences(first + rest)


def negotiated_codec(transceiver: RTCRtpTransceiver) -> str | None:
    """The video codec a negotiated transceiver sends ("VP8", "H264"), if any."""
    codecs = [c for c in internals.codecs(transceiver) if c.mimeType.lower() != "video/rtx"]
    return codecs[0].mimeType.split("/")[1].upper() if codecs else None
