"""A call's lifecycle: explicit states and guarded transitions.

The matchmaker decides who talks to whom; a :class:`Call` tracks one accepted
pairing from the moment both sides are told until it ends. Media (issue 4) hangs
off the same object: NEGOTIATING while peers exchange SDP, LIVE once media flows.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from telepresence.exceptions import InvalidStateError


class CallState(enum.Enum):
    CONNECTED = "connected"  # both sides told; text chat flows
    NEGOTIATING = "negotiating"  # WebRTC offer/answer under way
    LIVE = "live"  # media flowing
    ENDED = "ended"


_ALLOWED = {
    CallState.CONNECTED: {CallState.NEGOTIATING, CallState.ENDED},
    CallState.NEGOTIATING: {CallState.LIVE, CallState.CONNECTED, CallState.ENDED},
    CallState.LIVE: {CallState.NEGOTIATING, CallState.ENDED},
    CallState.ENDED: set(),
}


@dataclass
class Call:
    id: str
    customer_id: str
    agent_id: str
    started_at: float
    state: CallState = CallState.CONNECTED
    ended_reason: str | None = None

    def move(self, state: CallState) -> None:
        """Change state, or raise :class:`InvalidStateError` for a move the lifecycle forbids."""
        if state not in _ALLOWED[self.state]:
            raise InvalidStateError(f"call {self.id}: cannot go from {self.state.value} to {state.value}")
        self.state = state

    def end(self, reason: str) -> bool:
        """End the call once; ending again is a no-op that returns False."""
        if self.state is CallState.ENDED:
            return False
        self.move(CallState.ENDED)
        self.ended_reason = reason
        return True
