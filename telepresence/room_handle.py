"""What the control plane may do with a call's room, wherever the room lives.

:class:`RoomHandle` is the whole interface :class:`~telepresence.media_control.MediaControl`
uses. :class:`LocalRoom` is a :class:`media.room.Room` in this process (``media_workers
= 0``, and calls while a brand's live host runs: the host is rendered here); the worker proxy
(:mod:`telepresence.worker_room`) is the same interface for a room in a media worker
process. The switchboard never asks which one it has.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

from media.avatar.track import AvatarTrack
from media.layout import AVATAR
from media.room import Role, Room
from telepresence.hosts import resolve_look

PeerStateFn = Callable[[Role, str], None]


class RoomHandle(Protocol):
    """A call's media: two peers and one compositor, here or in a worker process."""

    label: str
    on_peer_state: PeerStateFn | None
    # Called with True while the agent's preview should show their own camera (media.room), False after.
    on_preview: Callable[[bool], None] | None
    # Called once if the room is lost with its process (a worker died): the call cannot go on.
    on_lost: Callable[[], None] | None
    missing: dict[Role, list[str]]
    # The room's share of its process's CPU, % of one core (telepresence.room_cpu); None: not yet.
    cpu_pct: float | None
    # Where the room lives: "" for this process, else the worker's name.
    worker: str

    @property
    def layout(self) -> str: ...

    @property
    def greeting(self) -> bool:
        """Whether the room shows a greeter of its own (:meth:`greet`)."""
        ...

    async def answer(self, role: Role, sdp: str) -> str:
        """The answer SDP to ``role``'s offer. Raises media.answer.MediaError."""
        ...

    async def answer_camera(self, sdp: str) -> str:
        """The answer to a peer that sends the agent's camera (and voice) instead of their browser
        (media.room_camera), until :meth:`release_camera`. Raises media.answer.MediaError."""
        ...

    async def release_camera(self) -> None:
        """The agent's browser camera (and voice) again."""
        ...

    async def answer_monitor(self, sdp: str) -> str:
        """The answer to the supervisors' monitor of the call (media.room_monitor): what the
        customer sees and both voices out, a whisper to the agent in. Raises MediaError."""
        ...

    async def release_monitor(self, answer: str | None = None) -> None:
        """The monitor goes (no supervisor watches any more); ``answer``: only the one given it."""
        ...

    def set_layout(self, name: str) -> None: ...

    def set_screen_limits(self, max_fps: float | None, scale: float) -> None:
        """Hold the screen tile to ``max_fps`` new frames a second (None: as sent) and ``scale``
        of its detail (1.0: full), whatever the agent's browser sends (media.screen_limits)."""
        ...

    async def screen_shared(self, active: bool) -> None: ...

    def set_agent_name(self, name: str) -> None:
        """The name on the placeholder tile while the agent's camera is off."""
        ...

    def record_stat(self, name: str, value: float) -> None:
        """A browser figure (``<role>_<name>``) for the call's latency receipt."""
        ...

    def receipt_summary(self) -> dict[str, dict[str, float]]:
        """Per stage p50/p95 in milliseconds, so far."""
        ...

    async def greet(self, look: str) -> None:
        """Open on a scripted avatar greeter of the room's own, in the shipped ``look``."""
        ...

    def say(self, text: str) -> None:
        """The greeter says ``text`` now, cutting off whatever it was saying (no greeter: nothing)."""
        ...

    async def close(self) -> None:
        """Close the peers and the compositor. Safe to call twice."""
        ...


class LocalRoom(Room):
    """A :class:`media.room.Room` in this process, with the rest of :class:`RoomHandle`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_lost: Callable[[], None] | None = None  # never lost: it lives and dies with us
        self.cpu_pct: float | None = None
        self.worker = ""
        self.greeter: AvatarTrack | None = None

    @property
    def greeting(self) -> bool:
        return self.greeter is not None

    def set_agent_name(self, name: str) -> None:
        self.compositor.agent_name = name

    def record_stat(self, name: str, value: float) -> None:
        self.compositor.receipt.record(name, value)

    def receipt_summary(self) -> dict[str, dict[str, float]]:
        return self.compositor.receipt.summary()

    async def greet(self, look: str) -> None:
        if self.greeter is None:
            self.greeter = AvatarTrack(_look(look))
            await self.compositor.attach(AVATAR, self.greeter, label=self.label)
        self.set_layout("avatar")

    def say(self, text: str) -> None:
        if self.greeter is not None:
            now = self.greeter.now()
            self.greeter.controller.interrupt(now)
            self.greeter.controller.submit({"command": "say", "text": text}, now)

    async def close(self) -> None:
        greeter, self.greeter = self.greeter, None
        if greeter is not None:
            greeter.stop()
        await super().close()


# Looks are shipped files: each is read once per process, and its spec shared by every greeter.
_look = functools.lru_cache(maxsize=8)(resolve_look)
