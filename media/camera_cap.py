"""The cap on a forwarded camera while the customer's link cannot take it (pure: time passed in).

While media.program forwards the agent's camera as it came, the server's own encoder does not
set the rate: the agent's sender must be told (REMB), as an SFU does. :class:`CameraCap` decides
what to tell it from what the customer says (its estimate, its receiver reports' loss) and what
goes out (the forwarded rate):

- **Capped only on evidence.** A receive-side estimate follows what it is sent, so the camera
  is capped only while the estimate is under what is forwarded AND the customer loses packets
  (an estimate alone held a Chromium camera at its starting rate, then walked it down).
- **Down at once, up in steps.** Once capped, the cap follows the estimate down at once (when
  under what goes out: an estimate of a quiet camera's rate says nothing of the link) and a
  new loss report cuts it (by half the share lost, as libwebrtc's loss-based control does; a
  report read again until the next one comes cuts nothing); without loss it rises
  :data:`RISE_PER_S` a second (libwebrtc's multiplicative increase), never above the
  customer's estimate, and is lifted only once it reaches the camera's ceiling. Lifting it
  all at once after 3 s without loss put a 2 Mbps camera back into a 1 Mbps link: the queue
  filled, every keyframe asked for was lost in it (4 freezes in 15 s, the longest 5.4 s).
"""

from __future__ import annotations

from media.encoded import UNCAPPED_BPS

CAP_BELOW = 0.85  # the estimate caps the camera once under this share of what is forwarded
LOSSY = 0.05  # ... and the customer's receiver reports lose at least this share of packets
CLEAR = 0.01  # under this share lost, a cap may rise
RISE_PER_S = 0.08  # a cap rises this share a second without loss


class CameraCap:
    """What to tell the camera's sender (REMB), given the customer's figures each check.

    Args:
        ceiling: the camera's own ceiling (bits per second): a cap risen to it is lifted.
    """

    def __init__(self, ceiling: float) -> None:
        if ceiling <= 0:
            raise ValueError(f"a camera's ceiling must be positive, not {ceiling!r}")
        self.ceiling = float(ceiling)
        self.cap: float | None = None  # bits per second; None: not capped
        self.loss = 0.0  # the share lost in the customer's latest receiver report
        self._at = 0.0

    def update(
        self, now: float, estimate: float | None, sending: float | None, loss: float | None
    ) -> float | None:
        """The REMB to send now (:data:`UNCAPPED_BPS`: the cap is lifted), or None: nothing to say.

        ``estimate``: what the customer says it can receive (None: it said nothing);
        ``sending``: the camera's forwarded rate (None: not known yet); ``loss``: the share of
        packets lost in the customer's receiver report if a new one came since the last call
        (None: none came; the last one still stands)."""
        fresh = loss is not None
        if loss is not None:
            self.loss = loss
        if self.cap is None:
            congested = estimate is not None and sending is not None and estimate < CAP_BELOW * sending
            if not (congested and self.loss >= LOSSY):
                return None
            assert estimate is not None
            self.cap, self._at = estimate, now
            return self.cap
        elapsed, self._at = max(0.0, now - self._at), now
        if estimate is not None and estimate < self.cap and (sending is None or estimate < sending):
            self.cap = estimate  # the customer takes less than goes out (a quiet camera's is not)
        if fresh and self.loss >= LOSSY:
            self.cap *= 1 - self.loss / 2  # once a report: one read again says nothing new
        elif self.loss < CLEAR:
            risen = self.cap * (1 + RISE_PER_S) ** elapsed
            self.cap = max(self.cap, min(risen, estimate)) if estimate is not None else risen
            if self.cap >= self.ceiling:
                self.lift()
                return UNCAPPED_BPS
        return self.cap  # REMB is a standing limit: said again

    def lift(self) -> None:
        """No cap any more (the camera is no longer forwarded, or rose to its ceiling)."""
        self.cap = None
