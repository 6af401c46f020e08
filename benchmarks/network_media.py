"""What the network suite's peers send and how the customer watches what it receives.

- :class:`NoisyCard`: the stamped test card (media.sources,
  media.stamp) with sensor noise, so the encoder spends a camera's bits.
- :class:`Presented`: every decoded composite frame with its glass-to-glass time and the arrival of
  the last packet it needed. :class:`LossLog`: the receiver's gaps, NACKs, PLIs and
  retransmissions received, each with its wall-clock time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import av
import cv2
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.sources import TestCardTrack
from media.stamp import luma_view, read_stamp, strip_height


class NoisyCard(TestCardTrack):
    """The stamped test card with a camera's sensor noise below the stamp, so that the encoder
    spends about a real camera's bits (a clean card takes ~0.3 Mbps at 720p; with noise the
    encoder runs at its target, 1.5 Mbps to start)."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__(width, height, fps=30, stamp=True, label="agent")
        rng = np.random.default_rng(13)
        rows = height - strip_height(width)
        self._noise = [rng.integers(0, 13, (rows, width), dtype=np.uint8) for _ in range(5)]

    async def recv(self) -> av.VideoFrame:
        frame = await super().recv()
        below = luma_view(frame)[strip_height(frame.width) :]
        cv2.add(
            below, self._noise[self.frames % len(self._noise)], dst=below
        )  # saturating, in place: ~0.1 ms
        return frame


class LossLog:
    """What the customer's receiver did about loss on the composite: the sequence numbers that
    never came in order (a gap seen), the NACKs and PLIs it sent, the retransmissions (RTX) that
    came back, each with its wall-clock time."""

    def __init__(self) -> None:
        self.gaps: list[tuple[float, int]] = []
        self.nacks: list[tuple[float, list[int], int | None]] = []  # (t, lost, highest seq received)
        self.plis: list[float] = []
        self.rtx: list[tuple[float, int]] = []
        self._highest: int | None = None
        self._media_ssrc: int | None = None

    def on_rtp(self, packet: Any) -> None:
        now = time.time()
        if self._media_ssrc is None:
            self._media_ssrc = packet.ssrc  # the first packet is the stream's own (RTX only answers NACKs)
        if packet.ssrc != self._media_ssrc:
            if len(packet.payload) >= 2:  # RTX: the original sequence number first
                self.rtx.append((now, int.from_bytes(packet.payload[:2], "big")))
            return
        seq = packet.sequence_number
        if self._highest is not None:
            ahead = (seq - self._highest) % 65536
            if 1 < ahead < 1000:
                self.gaps.extend((now, (self._highest + i) % 65536) for i in range(1, ahead))
            if ahead >= 65536 - 1000:
                return  # late or retransmitted in place
        self._highest = seq

    def watch(self, receiver: Any) -> None:
        """Log the receiver's NACKs and PLIs (wrapping its own sending methods)."""
        send_nack, send_pli = receiver._send_rtcp_nack, receiver._send_rtcp_pli

        async def nack(media_ssrc: int, lost: list[int]) -> None:
            self.nacks.append((time.time(), list(lost), self._highest))
            await send_nack(media_ssrc, lost)

        async def pli(media_ssrc: int) -> None:
            self.plis.append(time.time())
            await send_pli(media_ssrc)

        receiver._send_rtcp_nack, receiver._send_rtcp_pli = nack, pli

    def to_json(self) -> dict[str, Any]:
        r = lambda t: round(t, 4)  # noqa: E731
        return {
            "gaps": [[r(t), q] for t, q in self.gaps],
            "nacks": [[r(t), q, h] for t, q, h in self.nacks],
            "plis": [r(t) for t in self.plis],
            "rtx": [[r(t), q] for t, q in self.rtx],
        }


class Presented:
    """Every decoded composite frame: when aiortc handed it over, its stamp's age (ms) and frame
    id (the server repeats the last composite while the agent's camera stalls), and when
    the last packet it needed arrived (retransmissions included): decoded minus arrived is what
    the receiver's jitter buffer and decoder added (waiting behind a lost packet, or for CPU)."""

    def __init__(self) -> None:
        # (decoded, g2g ms, last packet's arrival, the stamp's frame id: a repeat shows the same)
        self.frames: list[tuple[float, int | None, float | None, int | None]] = []
        self.receiver: Any = None  # the composite's RTCRtpReceiver, for its RTP timestamp origin
        self._arrived: dict[int, float] = {}  # RTP timestamp -> its latest packet's arrival
        self.first_stamped = asyncio.Event()
        self.size = ""
        self.first_rtp = 0.0
        self.bytes = 0  # RTP received on the composite: payload and a 12-byte header a packet

    def on_rtp(self, packet: Any) -> None:
        if not self.bytes:
            self.first_rtp = time.time()
        self.bytes += 12 + len(packet.payload)
        self._arrived[packet.timestamp] = time.time()  # an RTX packet keeps its original's timestamp
        if len(self._arrived) > 4000:
            for key in list(self._arrived)[:2000]:
                del self._arrived[key]

    def _arrival(self, pts: int | None) -> float | None:
        mapper = getattr(self.receiver, "_RTCRtpReceiver__timestamp_mapper", None)  # aiortc's pts origin
        if pts is None or mapper is None or mapper._origin is None:
            return None
        return self._arrived.pop((pts + mapper._origin) % (1 << 32), None)  # a later copy: not this frame's

    async def drain(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = time.time()
                stamp = read_stamp(frame)
                age = stamp.age_ms(now) if stamp is not None else None
                ident = stamp.frame_id if stamp is not None else None
                self.frames.append((now, age, self._arrival(frame.pts), ident))
                if stamp is not None and not self.first_stamped.is_set():
                    self.size = f"{frame.width}x{frame.height}"
                    self.first_stamped.set()
