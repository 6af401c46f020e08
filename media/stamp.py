"""Frame stamps: a capture time and a frame id written into the picture itself.

A stamp is a row of square black/white blocks across the top of the luma plane.
Blocks are at least 8x8 pixels and aligned to 8, so each bit is a flat codec
block: VP8 and H.264 at ordinary bitrates keep a block's centre far on the right
side of mid-grey. Any sink that sees the decoded picture (a test peer, a
benchmark, a browser canvas) can read the stamp back, so glass-to-glass latency
is measured through every encoder, relay and compositor in between.

Layout of the bits, most significant first: a ``10`` sync pair, 32 bits of
wall-clock milliseconds (modulo 2**32), 16 bits of frame id, 8 bits of CRC-8
over the 48 payload bits. A stamp that fails its check reads as ``None``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import av
import cv2
import numpy as np

SYNC = (1, 0)
TIME_BITS = 32
ID_BITS = 16
CRC_BITS = 8
BITS = len(SYNC) + TIME_BITS + ID_BITS + CRC_BITS
BLOCKS_PER_ROW = 64  # the block size is the frame width / 64, rounded down to a multiple of 8
BLACK = 16
WHITE = 235
THRESHOLD = (BLACK + WHITE) // 2
MIN_WIDTH = BITS * 8


@dataclass(frozen=True, slots=True)
class Stamp:
    """What a stamp carries: capture time in wall-clock ms (mod 2**32) and a frame id (mod 2**16)."""

    time_ms: int
    frame_id: int

    def __post_init__(self) -> None:
        if not (0 <= self.time_ms < 1 << TIME_BITS and 0 <= self.frame_id < 1 << ID_BITS):
            raise ValueError(f"{self} out of range: time_ms < 2**32, frame_id < 2**16")

    @classmethod
    def now(cls, frame_id: int, clock: float | None = None) -> Stamp:
        """A stamp for a frame captured now (or at ``clock``, seconds since the epoch)."""
        seconds = time.time() if clock is None else clock
        return cls(int(seconds * 1000) % (1 << TIME_BITS), frame_id % (1 << ID_BITS))

    def age_ms(self, clock: float | None = None) -> int:
        """Milliseconds from the stamp's capture time to now (or ``clock``), wrap-safe."""
        now = Stamp.now(0, clock).time_ms
        return (now - self.time_ms) % (1 << TIME_BITS)


def block_size(width: int) -> int:
    """Side of one bit's square block for a frame ``width`` pixels wide."""
    if width < MIN_WIDTH:
        raise ValueError(f"a stamp needs a frame at least {MIN_WIDTH} pixels wide, not {width}")
    return max(8, width // BLOCKS_PER_ROW // 8 * 8)


def strip_height(width: int) -> int:
    """Rows at the top of the frame that the stamp covers."""
    return block_size(width)


def _crc8(value: int, nbits: int) -> int:
    # CRC-8/ATM (polynomial x^8 + x^2 + x + 1), bit by bit: 48 bits, no table needed.
    crc = 0
    for i in range(nbits - 1, -1, -1):
        bit = (value >> i) & 1
        crc ^= bit << 7
        crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _bits(stamp: Stamp) -> list[int]:
    payload = (stamp.time_ms % (1 << TIME_BITS)) << ID_BITS | (stamp.frame_id % (1 << ID_BITS))
    word = payload << CRC_BITS | _crc8(payload, TIME_BITS + ID_BITS)
    nbits = TIME_BITS + ID_BITS + CRC_BITS
    return list(SYNC) + [(word >> i) & 1 for i in range(nbits - 1, -1, -1)]


def write_luma(luma: np.ndarray, stamp: Stamp) -> None:
    """Write ``stamp`` into the top rows of a luma plane (``(height, width)`` uint8), in place."""
    block = block_size(luma.shape[1])
    strip = luma[:block]
    strip[:, BITS * block :] = BLACK
    # One broadcast assignment: each bit's value repeated over its block's columns.
    values = np.repeat(np.where(np.array(_bits(stamp), dtype=bool), WHITE, BLACK).astype(np.uint8), block)
    strip[:, : BITS * block] = values


def read_luma(luma: np.ndarray) -> Stamp | None:
    """The stamp in a luma plane, or ``None`` if there is none or it fails its check."""
    height, width = luma.shape
    try:
        block = block_size(width)
    except ValueError:
        return None
    if height < block:
        return None
    # Average the middle half of each block: its edges ring after lossy coding.
    lo, hi = block // 4, block - block // 4
    # The sync pair first, one block at a time (cv2.mean: ~1 us a block, numpy's axis means
    # ~15): most frames a compositor looks at carry no stamp, and the first block answers them.
    for index, bit in enumerate(SYNC):
        left = index * block
        if (cv2.mean(luma[lo:hi, left + lo : left + hi])[0] > THRESHOLD) != bit:
            return None
    cells = luma[lo:hi, : BITS * block].reshape(hi - lo, BITS, block)[:, :, lo:hi]
    bits = (cells.mean(axis=(0, 2)) > THRESHOLD).astype(int).tolist()
    if tuple(bits[: len(SYNC)]) != SYNC:
        return None
    word = 0
    for bit in bits[len(SYNC) :]:
        word = word << 1 | bit
    payload, crc = word >> CRC_BITS, word & 0xFF
    if _crc8(payload, TIME_BITS + ID_BITS) != crc:
        return None
    return Stamp(payload >> ID_BITS, payload & ((1 << ID_BITS) - 1))


def luma_view(frame: av.VideoFrame) -> np.ndarray:
    """A writable ``(height, width)`` view of a yuv420p frame's luma plane (no copy)."""
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        raise ValueError(f"stamps are written into yuv420p frames, not {frame.format.name}")
    plane = frame.planes[0]
    return np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, : frame.width]


def write_stamp(frame: av.VideoFrame, stamp: Stamp) -> None:
    """Stamp a yuv420p frame in place; the strip's chroma is set neutral so it stays black and white."""
    write_luma(luma_view(frame), stamp)
    rows = strip_height(frame.width) // 2
    for index in (1, 2):
        plane = frame.planes[index]
        chroma = np.frombuffer(plane, np.uint8).reshape(frame.height // 2, plane.line_size)
        chroma[:rows, : frame.width // 2] = 128


def read_stamp(frame: av.VideoFrame) -> Stamp | None:
    """The stamp in a decoded frame (any format; converted to yuv420p only if needed)."""
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        frame = frame.reformat(format="yuv420p", threads=1)
    return read_luma(luma_view(frame))
