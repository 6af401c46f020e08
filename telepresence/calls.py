"""A call's lifecycle: explicit states, guarded transitions, and the media it owns.

The matchmaker decides who talks to whom; a :class:`Call` tracks one accepted
pairing from the moment both sides are told until it ends: CONNECTED (chat),
NEGOTIATING while a browser's WebRTC offer is answered, LIVE once media flows,
ENDED. Its media (a :class:`~telepresence.room_handle.RoomHandle`: two peers, one
compositor, in this process or a media worker) is made
on the first offer and closed once, when the call ends.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from telepresence.exceptions import InvalidStateError
from telepresence.room_handle import RoomHandle

logger = logging.getLogger(__name__)


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
    room: RoomHandle | None = None
    peer_states: dict[str, str] = field(default_factory=dict)  # role -> connection state
    hand_over_on_agent_media: bool = False  # a call grown from a wait: the avatar hands over

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

    @property
    def active(self) -> bool:
        return self.state is not CallState.ENDED

    def media(self, make_room: Callable[[Call], RoomHandle]) -> RoomHandle:
        """The call's room, made on first use."""
        if self.state is CallState.ENDED:
            raise InvalidStateError(f"call {self.id} has ended")
        if self.room is None:
            self.room = make_room(self)
        return self.room

    def peer_state_changed(self, role: str, state: str) -> None:
        """Track each side's connection; the call is LIVE once either side's media connects."""
        self.peer_states[role] = state
        if self.state is CallState.ENDED:
            return
        if state == "connected" and self.state is CallState.NEGOTIATING:
            self.move(CallState.LIVE)
