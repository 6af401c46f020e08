"""The avatar in calls: the brand's live host, or a waiting customer's scripted greeter, and
its hand-over to the human agent (a layout change, never a renegotiation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiortc.mediastreams import MediaStreamTrack

from media.layout import AVATAR
from media.room import MediaError
from telepresence.calls import Call
from telepresence.hosts import HostDesk, resolve_look
from telepresence.protocol import ProtocolError
from telepresence.room_handle import LocalRoom, RoomHandle

Message = dict[str, Any]


class CallAvatars:
    """Puts the avatar into calls' rooms, has it speak to a waiting customer, and hands over.

    Args:
        hosts: the brand's live host, when one runs (its picture is made in this process).
        greeter_look: the look of a waiting customer's own greeter (None: no greeter).
        tell_both: sends a message to both sides of a call.
    """

    def __init__(
        self, hosts: HostDesk, greeter_look: str | None, tell_both: Callable[[Call, Message], None]
    ) -> None:
        self.hosts = hosts
        self._greeter_look = greeter_look
        # Resolved once, at start-up: a bad look is a configuration error, not a customer's.
        self._greeter_spec = resolve_look(greeter_look) if greeter_look else None
        self._tell_both = tell_both

    @property
    def greets(self) -> bool:
        """Whether a waiting customer gets media: a live host runs, or a greeter look is set."""
        return self.hosts.host is not None or self._greeter_spec is not None

    async def greet(self, call: Call, room: RoomHandle) -> None:
        """The call (or the wait) opens on the avatar; a layout change hands over to the agent.

        The brand's live host if one runs; otherwise, for a waiting customer, a scripted
        greeter of their own that reads them their place and expected wait.
        """
        if self.hosts.host is not None and isinstance(room, LocalRoom):
            track: MediaStreamTrack = self.hosts.host.viewer_track()
            await room.compositor.attach(AVATAR, track, label=call.id)
            room.set_layout("avatar")
        elif call.agent_id == "" and self._greeter_spec is not None:
            try:
                await room.greet(self._greeter_look)
            except MediaError as exc:
                raise ProtocolError(exc.code, exc.message) from None
        else:
            return
        self._tell_both(call, {"type": "layout", "call_id": call.id, "layout": "avatar"})

    def announce(self, lobby: Call, position: int | None, wait_s: float | None) -> None:
        """A waiting customer's own greeter says their place and expected wait."""
        if lobby.room is None or not lobby.room.greeting or position is None:
            return
        if wait_s is None:
            wait = "Everyone is busy right now, and you keep your place"
        elif wait_s < 60:
            wait = "It should be less than a minute"
        else:
            wait = f"It should be about {round(wait_s / 60)} minute{'s' if round(wait_s / 60) > 1 else ''}"
        lobby.room.say(f"You are number {position} in line. {wait}.")

    def handover(self, calls: list[Call]) -> None:
        """The host hands over: calls showing the avatar switch to their human agent."""
        for call in calls:
            room = call.room
            if room is not None and call.active and room.layout.startswith("avatar"):
                room.set_layout("screen" if room.layout == "avatar_screen" else "agent")
                self._tell_both(call, {"type": "layout", "call_id": call.id, "layout": room.layout})

    async def host_stopped(self, calls: list[Call]) -> None:
        """The host is going: hand over, then take its picture out of every call."""
        self.handover(calls)
        for call in calls:
            if isinstance(call.room, LocalRoom):  # avatars are only ever in rooms of this process
                await call.room.compositor.detach(AVATAR)
