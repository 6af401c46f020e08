"""Output timestamps spaced as the source captured its frames, on the program's timeline.

A receiving browser schedules each frame for display by its RTP timestamp. Frames stamped as
they leave the server carry the server's timing, not the camera's: two camera frames bunched
by the network or a busy sender (33 ms apart at capture) go out a few ms apart, and a browser
that shows one frame per display refresh (16.7 ms at 60 Hz) decodes both and shows one. So a
frame that has a source time is stamped at the last anchor plus the source's own step, and the
timeline is anchored again to the arrival clock when it strays from it by more than
``reanchor_s`` (the first frame, a new source, a long stall). The timeline never goes back.
"""

from __future__ import annotations

REANCHOR_S = 0.2  # a source-spaced pts may stray this far from its arrival
REFRESH_HZ = 60  # a display's refresh rate: a browser shows at most one frame each


class SourceSpacedClock:
    """pts at ``rate`` ticks a second of the monotonic clock, spaced as a source's capture times."""

    def __init__(self, rate: int, reanchor_s: float = REANCHOR_S) -> None:
        self.rate = rate
        self._reanchor = round(reanchor_s * rate)
        self._refresh = rate // REFRESH_HZ
        self._anchor: tuple[float, int] | None = None  # (the source's time in seconds, its pts)
        self.last = -1

    def reset(self) -> None:
        """A different source follows: the next frame with a source time anchors again."""
        self._anchor = None

    def stamp(self, now: float, source_s: float | None) -> int:
        """The pts of a frame made at monotonic ``now`` showing the source's frame of time
        ``source_s`` (seconds on the source's own clock; None: a repeat, or no source time)."""
        arrived = round(now * self.rate)
        if source_s is not None and self._anchor is not None:
            anchor_s, anchor_pts = self._anchor
            pts = anchor_pts + round((source_s - anchor_s) * self.rate)
            if abs(pts - arrived) <= self._reanchor and pts > self.last:
                self.last = pts
                return pts
            # The timeline ran ahead of arrival (its anchor frame came late, or a burst followed a
            # stall): close the lead at half the source's own step, rather than all at once, and
            # frames still a display refresh apart where the source's were.
            step = pts - self.last
            if arrived <= self.last and 0 < step <= self._reanchor:
                arrived = self.last + (
                    max(step // 2, self._refresh) if step > self._refresh else max(1, step // 2)
                )
        pts = max(arrived, self.last + 1)
        self.last = pts
        if source_s is not None:
            self._anchor = (source_s, pts)
        return pts
