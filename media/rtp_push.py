"""Encoded tracks pushed as plain RTP over UDP: a stream for a forwarding server (Janus's
Streaming plugin) that carries the viewers.

The track gives encoded ``av.Packet`` s (a program's frames, a voice's Opus packets);
aiortc's own codec packetizers (``aiortc.codecs.get_encoder(codec).pack``: H.264 FU-A/STAP-A,
VP8's payload descriptor, Opus as is) cut them into RTP payloads, so the stream is what an
aiortc sender would put on the wire, minus SRTP and RTCP.

Plain RTP has no feedback here: the receiver cannot ask for a keyframe (Janus sends PLI to an
RTP source only when its mountpoint has an RTCP port, and then to where RTCP came from), so a
video push asks its source for one itself, every :data:`KEYFRAME_EVERY_S` at most: the
longest a viewer joining the forwarder waits for a first picture, and the longest a lost
packet on the way corrupts the picture.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

import av
from aiortc import RTCRtpCodecParameters
from aiortc.codecs import get_encoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from media.capture_clock import RTP_MODULO

logger = logging.getLogger(__name__)

KEYFRAME_EVERY_S = 2.0


class RtpPacketizer:
    """One stream's RTP datagrams from its encoded packets: one SSRC, one sequence, one timeline.

    Pure (no I/O, no clock): each packet's RTP timestamp is its pts in the codec's clock,
    offset by a random origin as RFC 3550 asks.
    """

    def __init__(self, codec: RTCRtpCodecParameters, ssrc: int | None = None) -> None:
        if codec.payloadType is None:
            raise ValueError(f"{codec.mimeType}: the receiver's payload type is needed")
        self.codec = codec
        self.payload_type: int = codec.payloadType
        self.ssrc = ssrc if ssrc is not None else random.getrandbits(32)
        self.sequence = random.getrandbits(16)
        self._origin = random.getrandbits(32)
        self._packer = get_encoder(codec)

    def datagrams(self, packet: av.Packet) -> list[bytes]:
        """``packet`` as RTP datagrams, the last with the marker bit (the end of a frame)."""
        payloads, timestamp = self._packer.pack(packet)
        out = []
        for index, payload in enumerate(payloads):
            rtp = RtpPacket(
                payload_type=self.payload_type,
                marker=int(index == len(payloads) - 1),
                sequence_number=self.sequence,
                timestamp=(self._origin + timestamp) % RTP_MODULO,
                ssrc=self.ssrc,
                payload=payload,
            )
            self.sequence = (self.sequence + 1) & 0xFFFF
            out.append(rtp.serialize())
        return out


class RtpPush:
    """``track``'s packets to ``address`` (host, port) as plain RTP, until :meth:`stop`.

    Args:
        codec: the payload type and codec the receiver expects (its mountpoint's).
        ask_keyframe: for video, asks the track's source for a keyframe; called when none went
            out for :data:`KEYFRAME_EVERY_S`.
    """

    def __init__(
        self,
        track: MediaStreamTrack,
        address: tuple[str, int],
        codec: RTCRtpCodecParameters,
        *,
        ask_keyframe: Callable[[], None] | None = None,
        keyframe_every_s: float = KEYFRAME_EVERY_S,
        label: str = "rtp push",
    ) -> None:
        self.track = track
        self.address = address
        self.label = label
        self.packetizer = RtpPacketizer(codec)
        self.packets = 0  # encoded packets sent
        self.datagrams = 0
        self.keyframes = 0
        self._ask_keyframe = ask_keyframe
        self._keyframe_every_s = keyframe_every_s
        self._last_keyframe = 0.0
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the UDP socket (``address``'s name is resolved here) and start sending."""
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=self.address
        )
        self._last_keyframe = time.monotonic()
        self._task = loop.create_task(self._run(), name=self.label)

    async def _run(self) -> None:
        while True:
            try:
                packet = await self.track.recv()
            except MediaStreamError:
                return  # the source ended (its host stopped)
            if not isinstance(packet, av.Packet):  # a decoded frame: a wiring mistake, said once
                logger.error("%s: the track gives %s, not encoded packets", self.label, type(packet).__name__)
                return
            if self._ask_keyframe is not None:
                now = time.monotonic()
                if getattr(packet, "is_keyframe", False):
                    self.keyframes += 1
                    self._last_keyframe = now
                elif now - self._last_keyframe >= self._keyframe_every_s:
                    self._last_keyframe = now  # asked: the next ask waits as long again
                    self._ask_keyframe()
            try:
                datagrams = self.packetizer.datagrams(packet)
            except Exception:
                # One malformed frame must not end the stream; the next keyframe repairs it.
                logger.exception("%s: a packet could not be packetized", self.label)
                continue
            assert self._transport is not None
            for datagram in datagrams:
                self._transport.sendto(datagram)
            self.packets += 1
            self.datagrams += len(datagrams)

    async def stop(self) -> None:
        """Stop sending, close the socket and end the track; safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                # The push already ended on its own; its owner's close must still finish.
                logger.exception("%s: the push had failed", self.label)
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self.track.stop()
