"""Pure figures for the browser suite: the stamp code, and what the pages' records mean.

No I/O, no browser: the pages (benchmarks/browser_probes.py) record raw observations with
wall-clock times (ms since the epoch, one clock shared by every process on the machine);
these functions turn them into latencies, counts and the summary. Tested synchronously.

The stamp: 16 bits of frame id and 8 bits of CRC-8 (the polynomial ``media.stamp`` uses),
most significant first, as a 2 x 12 grid of 64-pixel black/white blocks in the top-left
corner of the 1280x720 source, so it still reads when a sender scales to 320x180.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

WIDTH, HEIGHT, FPS = 1280, 720, 30
STAMP_COLS, STAMP_ROWS, STAMP_BLOCK = 12, 2, 64
ID_BITS, CRC_BITS = 16, 8
STAMP_BITS = ID_BITS + CRC_BITS
STAMP_MASK = 0x5A5A5A  # XORed over the word, so a flat black or white corner is no stamp
CELL_MARGIN = 40  # a cell within this of mid-grey reads as no stamp (a blend of two frames)
FLASH_EVERY = FPS  # a white flash starts every second (frame ids 0, 30, 60 ...)
FLASH_FRAMES = 3  # and lasts three frames
FLASH_TOP = 192  # the flash is measured below the stamp (source rows 192..720)
FLASH_LUMA = 160  # mean luma above this is a flash (the normal picture is ~40-110)
BEEP_S = 0.1  # each flash comes with a 1 kHz beep this long
MAX_VOICE_MS = 900.0  # a beep heard later than this after the last sent one is not matched


def crc8(value: int, nbits: int) -> int:
    """CRC-8/ATM (x^8 + x^2 + x + 1) of the ``nbits`` low bits of ``value``, most significant first."""
    crc = 0
    for i in range(nbits - 1, -1, -1):
        crc ^= ((value >> i) & 1) << 7
        crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def crc_table() -> list[int]:
    """The byte-wise table of :func:`crc8` (the page computes ``T[T[hi] ^ lo]`` for a 16-bit id)."""
    return [crc8(byte, 8) for byte in range(256)]


def stamp_bits(frame_id: int) -> list[int]:
    """The 24 bits a frame's stamp shows, row by row."""
    frame_id %= 1 << ID_BITS
    word = (frame_id << CRC_BITS | crc8(frame_id, ID_BITS)) ^ STAMP_MASK
    return [(word >> i) & 1 for i in range(STAMP_BITS - 1, -1, -1)]


def decode_cells(cells: Sequence[float], margin: float = CELL_MARGIN) -> int | None:
    """The frame id in 24 cell lumas (0-255, row by row), or None if unreadable or failing its CRC."""
    if len(cells) != STAMP_BITS or any(abs(c - 127.5) < margin for c in cells):
        return None
    word = 0
    for cell in cells:
        word = word << 1 | (cell > 127.5)
    word ^= STAMP_MASK
    frame_id, crc = word >> CRC_BITS, word & 0xFF
    return frame_id if crc8(frame_id, ID_BITS) == crc else None


def is_flash_id(frame_id: int) -> bool:
    return frame_id % FLASH_EVERY < FLASH_FRAMES


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), linear between ranks like numpy's default; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


# ------------------------------------------------------------------------------ what a page saw


@dataclass(frozen=True, slots=True)
class Presented:
    """One frame the receiving <video> presented (requestVideoFrameCallback)."""

    frame_id: int | None  # read from the stamp
    luma: float  # mean luma of the flash area
    display_ms: float  # expectedDisplayTime, as wall time
    width: int
    height: int
    receive_ms: float | None = None  # metadata.receiveTime (last packet), as wall time
    same: bool = True  # the pixels read are the callback's frame (not a newer one)
    capture_ms: float | None = None  # metadata.captureTime (sender reports + round trip), as wall time
    # metadata.presentedFrames: frames the compositor showed so far, whether or not the page's
    # callback ran for each (a busy main thread gets one callback for several).
    presented_count: int | None = None
    media_s: float | None = None  # metadata.mediaTime: the frame's timestamp as the renderer sees it
    rtp_timestamp: int | None = None  # metadata.rtpTimestamp (90 kHz)

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> Presented:
        """From the page's ``[cells, luma, display, width, height, receive, same, capture, count,
        media time, rtp timestamp]`` row (the last three may be missing)."""
        cells, luma, display, width, height, receive, same, capture = record[:8]
        count, media, rtp = (*record[8:11], None, None, None)[:3]
        frame_id = decode_cells(cells)
        return cls(
            frame_id,
            float(luma),
            float(display),
            int(width),
            int(height),
            receive,
            bool(same),
            capture,
            count,
            None if media is None else float(media),
            None if rtp is None else int(rtp),
        )


def spacing_error_ms(
    captured: dict[int, float], frames: Sequence[Presented], t0: float, t1: float, clock: str
) -> list[float]:
    """For each new frame shown in ``[t0, t1)`` right after the one captured before it: how far its
    spacing from that frame on ``clock`` ("rtp": RTP timestamps; "media": the renderer's media
    time) strays from their spacing at capture, in ms. A renderer that paces frames by these
    timestamps (Chromium's does) shows frames spaced wrongly late, or not at all."""
    errors: list[float] = []
    previous: Presented | None = None
    for frame in frames:
        if not (t0 <= frame.display_ms < t1 and frame.same and frame.frame_id in captured):
            continue
        if previous is not None and frame.frame_id == previous.frame_id + 1:  # type: ignore[operator]
            at_capture = captured[frame.frame_id] - captured[previous.frame_id]  # type: ignore[index]
            if clock == "rtp" and frame.rtp_timestamp is not None and previous.rtp_timestamp is not None:
                spaced = ((frame.rtp_timestamp - previous.rtp_timestamp) % 2**32) / 90
            elif clock == "media" and frame.media_s is not None and previous.media_s is not None:
                spaced = (frame.media_s - previous.media_s) * 1000
            else:
                spaced = None
            if spaced is not None:
                errors.append(abs(spaced - at_capture))
        if previous is None or frame.frame_id != previous.frame_id:
            previous = frame
    return errors


def bunched_share(frames: Sequence[Presented], t0: float, t1: float, under_ms: float = 10.0) -> float | None:
    """Share of the new frames shown in ``[t0, t1)`` whose last packet reached the customer less
    than ``under_ms`` after the previous shown frame's: frames arriving in bunches, which a
    renderer on a 30 fps grid shows one of."""
    shown = {f.frame_id: f.receive_ms for f in frames if t0 <= f.display_ms < t1 and f.same and f.receive_ms}
    arrivals = sorted(shown.values())
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    return sum(gap < under_ms for gap in gaps) / len(gaps) if gaps else None


def composited_fps(frames: Sequence[Presented], t0: float, t1: float) -> float | None:
    """Frames a second the receiving page's compositor showed over ``[t0, t1)`` (presentedFrames)."""
    inside = [f for f in frames if t0 <= f.display_ms < t1 and f.presented_count is not None]
    if len(inside) < 2 or inside[-1].display_ms <= inside[0].display_ms:
        return None
    shown = inside[-1].presented_count - inside[0].presented_count
    return shown / (inside[-1].display_ms - inside[0].display_ms) * 1000


@dataclass(slots=True)
class VideoWindow:
    """Frames presented in a window: glass-to-glass latency of each new frame, and freezes."""

    latencies: list[float] = field(default_factory=list)
    received: list[float] = field(default_factory=list)  # capture -> last packet received
    # Display - captureTime, where Chromium can map the sender's reports: its own glass-to-glass.
    by_capture_time: list[float] = field(default_factory=list)
    presented: int = 0
    repeated: int = 0  # a presented frame showing the previous one's stamp (a freeze)
    unreadable: int = 0  # no stamp read (or one not sent)
    raced: int = 0  # the pixels read were a newer frame than the callback's: skipped


def video_window(
    captured: dict[int, float], frames: Sequence[Presented], t0: float, t1: float
) -> VideoWindow:
    """Latency (display - capture) of each frame id first presented in ``[t0, t1)``."""
    window = VideoWindow()
    seen: set[int] = set()
    previous: int | None = None
    for frame in frames:
        inside = t0 <= frame.display_ms < t1
        if not frame.same:
            window.raced += inside
            continue
        known = frame.frame_id is not None and frame.frame_id in captured
        if inside:
            window.presented += 1
            if not known:
                window.unreadable += 1
            elif frame.frame_id == previous:
                window.repeated += 1
            elif frame.frame_id not in seen:
                window.latencies.append(frame.display_ms - captured[frame.frame_id])  # type: ignore[index]
                if frame.receive_ms is not None:
                    window.received.append(frame.receive_ms - captured[frame.frame_id])  # type: ignore[index]
                if frame.capture_ms is not None:
                    window.by_capture_time.append(frame.display_ms - frame.capture_ms)
        if known:
            seen.add(frame.frame_id)  # type: ignore[arg-type]
            previous = frame.frame_id
        else:
            previous = None
    return window


def flash_arrivals(frames: Sequence[Presented]) -> tuple[dict[int, float], int]:
    """When each flash (numbered by second) was first shown, and how many frames disagree.

    A flash is a frame whose stamp names a flash frame AND whose picture is bright; a
    stamp naming a flash frame on a dark picture (or the reverse) is counted as a misread.
    """
    arrivals: dict[int, float] = {}
    misreads = 0
    for frame in frames:
        if frame.frame_id is None or not frame.same:
            continue
        bright = frame.luma >= FLASH_LUMA
        if bright != is_flash_id(frame.frame_id):
            misreads += 1
            continue
        if bright:
            arrivals.setdefault(frame.frame_id // FLASH_EVERY, frame.display_ms)
    return arrivals, misreads


def match_beeps(
    sent: Sequence[float], heard: Sequence[float], max_ms: float = MAX_VOICE_MS
) -> dict[int, float]:
    """Index of the sent beep -> when it was heard: each onset goes to the latest beep sent before it."""
    matched: dict[int, float] = {}
    ordered = sorted(enumerate(sent), key=lambda pair: pair[1])
    for onset in heard:
        before = [(index, t) for index, t in ordered if t <= onset]
        if before and onset - before[-1][1] <= max_ms:
            matched.setdefault(before[-1][0], onset)
    return matched


def beep_seconds(
    beeps: Sequence[float], flashes: dict[int, float], slack_ms: float = 100.0
) -> dict[int, int]:
    """Sent beep index -> the second (flash number) it goes with: the flash captured nearest it."""
    paired: dict[int, int] = {}
    for index, t in enumerate(beeps):
        second, when = min(flashes.items(), key=lambda item: abs(item[1] - t), default=(None, math.inf))
        if second is not None and abs(when - t) <= slack_ms:
            paired[index] = second
    return paired


def jitter_buffer_ms(
    samples: Sequence[dict[str, Any]], t0: float, t1: float, key: str = "vin", delay: str = "jbd"
) -> float | None:
    """Mean jitter buffer delay per emitted frame over ``[t0, t1]``, from cumulative getStats counters
    (``delay``: ``jbd`` the delay, ``jbt`` its target, ``jbm`` its minimum, which A/V sync raises;
    for video also ``proc``, receipt to decoded)."""
    rows = [(s["t"], s[key]) for s in samples if s.get(key) and s[key].get("jbe") is not None]
    rows = [r for r in rows if r[1].get(delay) is not None]
    start = [r for r in rows if r[0] <= t0] or rows[:1]
    end = [r for r in rows if r[0] <= t1]
    if not start or not end:
        return None
    (_, a), (_, b) = start[-1], end[-1]
    emitted = b["jbe"] - a["jbe"]
    return (b[delay] - a[delay]) / emitted * 1000 if emitted > 0 else None


def first_reach(
    samples: Sequence[dict[str, Any]],
    since: float | None,
    test: Callable[[dict[str, Any]], bool],
    until: float,
) -> float | None:
    """Seconds from ``since`` to the first sample (up to ``until``) that passes ``test``; None if none."""
    if since is None:
        return None
    for sample in samples:
        if since <= sample["t"] <= until and test(sample):
            return (sample["t"] - since) / 1000
    return None


def value_at(samples: Sequence[dict[str, Any]], t: float, get: Callable[[dict[str, Any]], Any]) -> Any:
    """The last non-null value ``get`` reads from samples at or before ``t``."""
    value = None
    for sample in samples:
        if sample["t"] > t:
            break
        value = get(sample) if get(sample) is not None else value
    return value


def rate(samples: Sequence[dict[str, Any]], t0: float, t1: float, get: Callable[[dict[str, Any]], Any]):
    """Per second, how much a cumulative counter grew over ``[t0, t1]`` (None without two readings)."""
    rows = [(s["t"], get(s)) for s in samples if t0 <= s["t"] <= t1 and get(s) is not None]
    if len(rows) < 2 or rows[-1][0] <= rows[0][0]:
        return None
    return (rows[-1][1] - rows[0][1]) / (rows[-1][0] - rows[0][0]) * 1000


def share(
    samples: Sequence[dict[str, Any]], t0: float, t1: float, get: Callable[[dict[str, Any]], Any]
) -> dict:
    """How often each value of ``get`` was seen in ``[t0, t1]`` (fractions of the samples)."""
    values = [get(s) for s in samples if t0 <= s["t"] <= t1]
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return {k: round(v / len(values), 3) for k, v in sorted(counts.items())} if values else {}


def is_720p(sample: dict[str, Any]) -> bool:
    out = sample.get("out") or {}
    return (out.get("w"), out.get("h")) == (WIDTH, HEIGHT)


def bwe_kbps(sample: dict[str, Any]) -> float | None:
    return sample["bwe"] / 1000 if sample.get("bwe") is not None else None


def one_stream(msid_lines: Sequence[str]) -> bool:
    """Whether every received track is in one media stream (``a=msid:<stream> <track>``), so
    Chromium can synchronise audio with video; ``-`` is no stream."""
    streams = {
        line.split(":", 1)[1].split()[0] for line in msid_lines if ":" in line and line.split(":", 1)[1]
    }
    return len(streams) == 1 and "-" not in streams
