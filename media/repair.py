"""Repairing a lossy video stream on the receiving side: NACKs asked again, keyframes waited for.

Pure: no I/O, no asyncio; the clock is passed in. media.receive puts them into a receiver.

- **NACK retries.** aiortc's ``NackGenerator`` names a missing packet when its gap appears and
  again only when a later gap appears. On a lossy link the NACK or its retransmission is lost
  too (2 % each way on ``mobile``), and the frame then waits for the jitter buffer to give it up.
  :class:`RetryingNacks` asks again every round trip (measured from its own repairs) until the
  packet comes or waiting is pointless.
- **Keyframe waits.** After a frame was given up, the frames after it refer to it: decoded, they
  show artefacts; forwarded, the viewer's decoder does. :class:`KeyframeWait` passes none until
  a keyframe, asks for one again while it waits, and otherwise lets keyframe requests (PLI) go at
  most once a retry interval: each one costs the sender a keyframe (4-10x a delta frame's bits),
  which on a lossy link is itself likely to lose a packet.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable

from aiortc.rtcrtpreceiver import NackGenerator
from aiortc.rtp import RtpPacket

from media.encoded import KEYFRAME_ASK_S

NACK_RETRY_MIN_S = 0.04  # never ask again sooner (a LAN's round trip is ~1 ms: no storm)
NACK_RETRY_MAX_S = 0.25
NACK_FIRST_RTT_S = 0.1  # the round trip assumed before the first repair measured one
NACK_GIVE_UP_S = 0.4  # the jitter buffer gives a missing packet up after 0.35 s (media.receive)
NACK_MAX_TRIES = 6


class RetryingNacks(NackGenerator):
    """aiortc's NACK generator, asking again for packets still missing one retry interval on.

    The receiver calls :meth:`add` with every packet and, when it returns True, sends a NACK
    naming every packet in ``missing``.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__()
        self.clock = clock
        self.retries = 0  # NACKs sent again for packets already asked for
        self.repairs = 0  # missing packets that came after a NACK
        self._asked: dict[int, tuple[float, float, int]] = {}  # seq -> (first ask, last ask, tries)
        self._round_trips: deque[float] = deque(maxlen=16)
        self._last_nack = 0.0

    @property
    def retry_s(self) -> float:
        """How long to wait for a retransmission before asking again: 1.5 round trips."""
        rtt = statistics.median(self._round_trips) if self._round_trips else NACK_FIRST_RTT_S
        return min(NACK_RETRY_MAX_S, max(NACK_RETRY_MIN_S, 1.5 * rtt))

    def add(self, packet: RtpPacket) -> bool:
        now = self.clock()
        seq = packet.sequence_number
        asked = self._asked.pop(seq, None)
        if asked is not None and seq in self.missing:
            self.repairs += 1
            first, _, tries = asked
            if tries == 1:  # asked once: the time to its repair is a round trip
                self._round_trips.append(now - first)
        missed = super().add(packet)
        self._forget(now)
        if not self.missing:
            return False
        due = missed or now - self._last_nack >= self.retry_s
        if not due:
            return False
        if not missed:
            self.retries += 1
        self._last_nack = now
        for missing in self.missing:
            first, _, tries = self._asked.get(missing, (now, now, 0))
            self._asked[missing] = (first, now, tries + 1)
        return True

    def _forget(self, now: float) -> None:
        """Stop asking for packets the jitter buffer no longer waits for (or asked too often)."""
        for seq in list(self.missing):
            first, _, tries = self._asked.get(seq, (now, now, 0))
            if now - first >= NACK_GIVE_UP_S or tries >= NACK_MAX_TRIES:
                self.missing.discard(seq)
                self._asked.pop(seq, None)
        for seq in [s for s in self._asked if s not in self.missing]:
            del self._asked[seq]


KEYFRAME_RETRY_MAX_S = 2.4


class KeyframeWait:
    """Whether frames may go on after a loss, and when to ask the sender for a keyframe.

    ``lost()``: a frame was given up; from then :meth:`passes` lets no frame through until a
    keyframe. :meth:`ask` takes each wish to send a PLI and says whether to send it. While no
    keyframe comes, each ask waits twice as long as the one before (up to 2.4 s): a keyframe
    (~100 KB at 720p) takes 0.8 s through a 1 Mbps link, and asking every 0.3 s kept a new one
    coming behind each, none of them whole (a 4 s freeze).
    """

    def __init__(self, retry_s: float = KEYFRAME_ASK_S) -> None:
        self.retry_s = retry_s
        self._interval = retry_s
        self.waiting = False
        self.held = 0  # frames not passed on while waiting
        self.asked = 0  # PLIs let through
        self.refused = 0  # PLIs not sent: one was sent within retry_s and no keyframe came since
        self._asked_at: float | None = None

    def lost(self) -> None:
        self.waiting = True

    def passes(self, keyframe: bool) -> bool:
        if keyframe:
            self.waiting = False
            self._asked_at = None  # the keyframe came: a new loss may ask at once
            self._interval = self.retry_s
            return True
        if self.waiting:
            self.held += 1
            return False
        return True

    def ask(self, wanted: bool, now: float) -> bool:
        """Whether to send a PLI now: ``wanted`` (the jitter buffer's wish), or still waiting for a
        keyframe one retry interval after the last ask; never twice within that interval."""
        if not wanted and not self.waiting:
            return False
        if self._asked_at is not None:
            if now - self._asked_at < self._interval:
                if wanted:
                    self.refused += 1
                return False
            self._interval = min(KEYFRAME_RETRY_MAX_S, 2 * self._interval)  # none came since
        self._asked_at = now
        self.asked += 1
        return True
