"""How the server's video encoders follow a browser's bandwidth estimate without a keyframe storm.

aiortc's encoders cannot change bitrate in place (FFmpeg's wrappers set libvpx and x264
up once), so aiortc recreates the encoder, with a keyframe 2-4x a frame's usual size,
whenever REMB moves the target by more than 10 %. A browser's REMB moves by that much
about once a second while it ramps: a keyframe a second, each one a burst that can make
the estimate fall and rise again. :class:`RateGovernor` decides when a new estimate is
worth a new encoder: at once when it falls far (congestion: send less now), after a
pause when it rises (a ramp is taken in large steps, not every 10 %). A fall to a rate
the encoder is not even using is ignored: a browser's estimate follows what it receives
(libwebrtc's REMB stays within ~1.5x the incoming rate), so a quiet picture would
otherwise pull the target down, the new encoder's keyframe burst make the estimate fall
again, and so on: measured against Chromium, 1.5 -> 1.0 -> 0.33 Mbps in 15 s of a call.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

SENT_WINDOW_S = 1.0


@dataclass(frozen=True, slots=True)
class Bitrate:
    """A video bitrate range in bits per second: where to start, and the estimate's floor and ceiling."""

    start: int = 1_500_000
    min: int = 300_000
    max: int = 3_000_000

    def clamp(self, value: int) -> int:
        return max(self.min, min(value, self.max))


class SentRate:
    """Bits per second put out over the last :data:`SENT_WINDOW_S` (None before half a window's
    history). ``add`` may be called from an encoder's thread: one append is safe."""

    def __init__(self) -> None:
        self._sent: deque[tuple[float, int]] = deque()

    def add(self, size: int, now: float) -> None:
        self._sent.append((now, size))
        while self._sent and self._sent[0][0] < now - SENT_WINDOW_S:
            self._sent.popleft()

    def bps(self, now: float) -> float | None:
        samples = list(self._sent)
        if not samples or now - samples[0][0] < SENT_WINDOW_S / 2:
            return None
        return sum(size for at, size in samples if at >= now - SENT_WINDOW_S) * 8 / SENT_WINDOW_S


@dataclass(slots=True)
class RateGovernor:
    """The bitrate an encoder should run at, given the estimates a browser sends (time passed in).

    A fall below ``1 - fall`` of the running rate is followed at once (at most every
    ``fall_pause_s``); a rise above ``1 + rise`` only after ``rise_pause_s`` at the running
    rate. Changes inside those bands are ignored: they are not worth a keyframe.
    """

    bitrate: Bitrate = field(default_factory=Bitrate)
    fall: float = 0.15
    rise: float = 0.25
    fall_pause_s: float = 1.0
    rise_pause_s: float = 2.0
    running: int = 0
    changes: int = 0
    last_estimate: float | None = None  # what the browser said last (bits per second)
    _since: float | None = None
    _sent: SentRate = field(default_factory=lambda: SentRate())

    def __post_init__(self) -> None:
        self.running = self.bitrate.clamp(self.bitrate.start)

    def sent(self, size: int, now: float) -> None:
        """The encoder put out ``size`` bytes (called from its thread; one append is safe)."""
        self._sent.add(size, now)

    def sending_bps(self, now: float) -> float | None:
        """What the encoder put out over the last second; None before it has half a second's history."""
        return self._sent.bps(now)

    def estimate(self, bps: float, now: float) -> int:
        """Take a new estimate; returns the rate to run at (the same value if nothing changes)."""
        try:
            wanted = self.bitrate.clamp(int(bps))
        except (OverflowError, ValueError):
            return self.running  # an absurd estimate (inf, nan) changes nothing
        self.last_estimate = float(bps)
        held = now - self._since if self._since is not None else float("inf")
        sending = self.sending_bps(now)
        falling = (
            wanted < self.running * (1 - self.fall)
            and held >= self.fall_pause_s
            and (sending is None or wanted < sending)  # below what goes out: it must go down
        )
        rising = wanted > self.running * (1 + self.rise) and held >= self.rise_pause_s
        if falling or rising:
            self.running = wanted
            self.changes += 1
            self._since = now
        return self.running
