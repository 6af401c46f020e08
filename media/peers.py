"""aiortc helpers: codec preferences, encoder settings, and marker-bit frame completion.

Three fixes for costs measured in aiortc 1.16 (DESIGN, "Frame path and latency budget"):

- **Receive delay.** ``aiortc.jitterbuffer.JitterBuffer`` hands a video frame to the
  decoder only when the first packet of the NEXT frame arrives, although every sender
  (aiortc's own and browsers') sets the RTP marker bit on a frame's last packet. That
  costs one frame interval per receiving hop (33 ms at 30 fps, 200 ms for a 5 fps
  screen share) and holds the last frame before a pause forever.
  :class:`MarkerJitterBuffer` also completes a frame when the packets from the frame's
  first to its marker packet are all there; :func:`enable_low_latency_receive` puts it
  into a receiver (opt-in, per receiver or per peer connection).
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
from collections.abc import Callable, Iterator

import av
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs.h264 import MAX_FRAME_RATE, H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

from media import aiortc_internals as internals
from media.bitrate import Bitrate, RateGovernor
from media.receipt import LatencyReceipt

logger = logging.getLogger(__name__)

CODECS = ("VP8", "H264")


# -- receive: complete frames on the marker bit ------------------------------


# About two seconds of a 2 Mbps stream: a retransmission asked for again after a lost one
# (a mobile link's second NACK comes 300-400 ms on) still finds its packet.
RETRANSMISSION_HISTORY = 512
internals.keep_retransmission_history(RETRANSMISSION_HISTORY)


class MarkerJitterBuffer(JitterBuffer):
    """A video jitter buffer that releases a frame as soon as its marker packet completes it.

    The stock scan (release frame N when frame N+1's first packet arrives) stays as the
    fallback, for a sender that never sets the marker bit or a marker packet that was lost.
    """

    # Called with each complete frame, before it goes to the decoder (media.passthrough, media.forward).
    on_frame: Callable[[JitterFrame], None] | None = None
    # True: complete frames go to ``on_frame`` only, none to the decoder (a stream forwarded as it
    # came: the receiver's decoder is never fed, and its track never gives a frame).
    forward_only: bool = False
    # Frames handed on to the receiver's decoder.
    to_decoder: int = 0
    # Set when decoding resumes after ``forward_only``: frames reach the decoder again only from
    # one this says is a keyframe (the decoder's references are stale until then).
    decode_from: Callable[[JitterFrame], bool] | None = None
    # While ``forward_only``, frames this says are keyframes still reach the decoder (a browser
    # changes resolution on a keyframe): what draws the stream knows its current size, at the
    # cost of a keyframe's decode now and then.
    decode_keyframes: Callable[[JitterFrame], bool] | None = None
    keyframes_decoded: int = 0  # those, counted
    # A missing packet holds every later frame; after this long it is given up (its frame
    # dropped, a keyframe asked for) rather than waited for until the buffer overflows
    # (512 packets: 1.5-2.6 s of a frozen picture on a lossy link). Long enough for one NACK
    # and its retransmission over a mobile link's round trip.
    gap_timeout_s: float = 0.35
    gaps_skipped: int = 0
    clock: Callable[[], float] = staticmethod(time.monotonic)
    _gap_since: float | None = None
    _newest: int | None = None  # the highest sequence number held
    _maybe_gap = False  # a packet came more than one past the newest: look for a hole

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._newest is None or 0 < uint16_add(seq, -self._newest) < 0x8000:
            if self._newest is not None and uint16_add(seq, -self._newest) > 1:
                self._maybe_gap = True
            self._newest = seq
        pli, frame = super().add(packet)
        newest = self._packets[self._newest % self.capacity]  # type: ignore[operator]
        if newest is None or newest.sequence_number != self._newest:
            self._newest = seq  # released, or the buffer started again (a sequence jump back)
        # In order, nothing is scanned; after a jump, the held packets until the hole is found filled.
        if self._maybe_gap and self._held_by_gap():
            now = self.clock()
            if self._gap_since is None:
                self._gap_since = now
            elif frame is None and now - self._gap_since >= self.gap_timeout_s:
                self._skip_gap()
                self._gap_since = None  # a gap after this one starts its own wait
                pli = True
                frame = self._remove_frame(seq)
        else:
            self._gap_since = None
        if frame is None:
            return pli, None
        if self.on_frame is not None:
            self.on_frame(frame)
        if self.forward_only:
            if self.decode_keyframes is None or not self.decode_keyframes(frame):
                return pli, None
            self.keyframes_decoded += 1
        elif self.decode_from is not None:
            if not self.decode_from(frame):
                return pli, None
            self.decode_from = None
        self.to_decoder += 1
        return pli, frame

    def _held_by_gap(self) -> bool:
        """Whether a packet is missing before the newest one (so nothing after it can go)."""
        if self._origin is None or self._newest is None:
            return False
        span = uint16_add(self._newest, -self._origin)
        if span < self.capacity and any(
            self._packets[(self._origin + count) % self.capacity] is None for count in range(span)
        ):
            return True
        self._maybe_gap = False
        return False

    def _skip_gap(self) -> None:
        """Give up the frame the first missing packet belongs to (its timestamp is that of the
        packets either side of the gap; both, when the gap ends one frame): the decoder goes on
        from the next whole frame, and the sender is asked for a keyframe."""
        self.gaps_skipped += 1
        assert self._origin is not None and self._newest is not None
        span = uint16_add(self._newest, -self._origin)
        slots = [self._packets[(self._origin + count) % self.capacity] for count in range(span + 1)]
        first_gap = slots.index(None)
        after = next((p for p in slots[first_gap:] if p is not None), None)
        if after is None:
            return
        doomed = {after.timestamp} | ({slots[first_gap - 1].timestamp} if first_gap else set())  # type: ignore[union-attr]
        drop = first_gap
        while drop <= span and (slots[drop] is None or slots[drop].timestamp in doomed):  # type: ignore[union-attr]
            drop += 1
        self.remove(drop)

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        frame = self._complete_on_marker()
        if frame is not None:
            return frame
        return super()._remove_frame(sequence_number)

    def _complete_on_marker(self) -> JitterFrame | None:
        if self._origin is None:
            return None
        packets = []
        timestamp = None
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self.capacity]
            if packet is None:
                return None  # a gap: wait for the missing packet (or a NACKed retransmission)
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                return None  # a new frame began without a marker: leave it to the stock scan
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                return JitterFrame(data=b"".join(p._data for p in packets), timestamp=timestamp)  # type: ignore[attr-defined]
        return None


def _receivers(target: RTCRtpReceiver | RTCPeerConnection) -> Iterator[RTCRtpReceiver]:
    if isinstance(target, RTCRtpReceiver):
        yield target
    else:
        for transceiver in target.getTransceivers():
            yield transceiver.receiver


def enable_low_latency_receive(target: RTCRtpReceiver | RTCPeerConnection) -> None:
    """Complete received video frames on the RTP marker bit (saves one frame interval a hop).

    Pass a receiver, or a peer connection: then every video receiver it has now and every
    one it gets later (on its ``track`` event) is switched. Call before media flows; a
    receiver that already buffered packets keeps the stock buffer (swapping would drop them).
    """
    if isinstance(target, RTCPeerConnection) and not getattr(target, "_media_low_latency", False):
        target._media_low_latency = True  # type: ignore[attr-defined]

        @target.on("track")
        def _on_track(track) -> None:
            for transceiver in target.getTransceivers():
                if transceiver.receiver.track is track:
                    _swap_jitter_buffer(transceiver.receiver)

    for receiver in _receivers(target):
        _swap_jitter_buffer(receiver)


def _swap_jitter_buffer(receiver: RTCRtpReceiver) -> None:
    current = internals.jitter_buffer(receiver)
    if current is None or isinstance(current, MarkerJitterBuffer):
        return
    if not current._is_video:
        return  # audio keeps its prefetch
    if current._origin is not None:
        logger.warning("receiver already has packets buffered; keeping the stock jitter buffer")
        return
    internals.replace_jitter_buffer(
        receiver, MarkerJitterBuffer(capacity=current.capacity, prefetch=current._prefetch, is_video=True)
    )


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
            self.codec.options = {"level": "31", "preset": self.preset, "tune": "zerolatency"}
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
