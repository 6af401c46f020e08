"""Encoded frames cut into RTP payloads once, for every sender of their codec.

A program encoded once for many viewers (media.program) would still be packetised once a
viewer: each aiortc sender cuts the ``av.Packet`` it is handed into payloads (H.264 FU-A and
STAP-A, VP8's payload descriptor) with its own codec's ``pack``. The payloads depend on the
frame alone, never on the viewer: :class:`Packetizer` cuts each frame once into a
:class:`PacketizedFrame`, and a sender given :class:`PayloadHandover` as its encoder only
hands those payloads to its RTP loop, which stamps its own header on each
(media.aiortc_internals: sequence number, SSRC, timestamp origin, header extensions).

VP8's picture id then counts the program's frames, not each sender's: a viewer that skipped
frames (its queue fell behind) sees the gap, as its decoder should.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import av
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

from media.bitrate import Bitrate, RateGovernor


@dataclass(frozen=True, slots=True)
class PacketizedFrame:
    """One encoded frame as RTP payloads (in order; the last ends the frame) and its RTP
    timestamp before any sender's random origin; ``is_keyframe`` as its ``av.Packet`` said."""

    payloads: list[bytes]
    timestamp: int
    is_keyframe: bool


class Packetizer:
    """Cuts one codec's encoded frames ("VP8" or "H264") into payloads, as aiortc's senders do."""

    def __init__(self, codec: str) -> None:
        if codec not in ("VP8", "H264"):
            raise ValueError(f"no RTP packetizer for video codec {codec!r}")
        self.codec = codec
        # aiortc's own encoders' pack(): no codec is opened until one encodes, which these never do.
        self._packer = Vp8Encoder() if codec == "VP8" else H264Encoder()
        self.frames = 0  # frames cut, whatever the number of senders that send them

    def __call__(self, packet: av.Packet) -> PacketizedFrame:
        payloads, timestamp = self._packer.pack(packet)
        self.frames += 1
        return PacketizedFrame(payloads, timestamp, bool(packet.is_keyframe))


class PayloadHandover:
    """A sender's encoder that encodes nothing: it hands over the payloads of the
    :class:`PacketizedFrame` its track gives. What the sender's receiver says it can take
    (REMB: aiortc sets ``target_bitrate`` on its sender's encoder) goes to ``governor``, as
    on the tuned encoders (media.peers), where the program reads it."""

    def __init__(self, bitrate: Bitrate | None = None) -> None:
        self.governor = RateGovernor(bitrate or Bitrate())

    @property
    def target_bitrate(self) -> int:
        return self.governor.running

    @target_bitrate.setter
    def target_bitrate(self, bps: int) -> None:
        self.governor.estimate(bps, time.monotonic())

    def pack(self, frame: PacketizedFrame) -> tuple[list[bytes], int]:
        if not isinstance(frame, PacketizedFrame):
            raise TypeError(f"this sender sends packetized frames, not {type(frame).__name__}")
        return frame.payloads, frame.timestamp

    def encode(self, frame: av.Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise TypeError("this sender sends packetized frames: it has no encoder for raw ones")
