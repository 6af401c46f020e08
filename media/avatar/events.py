"""What an avatar reports (talking started or stopped, a state change) and who hears it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

logger = logging.getLogger(__name__)

EventKind = Literal["started_talking", "stopped_talking", "state", "queue_empty"]


@dataclass(frozen=True, slots=True)
class AvatarEvent:
    """Something the controller should know: talking started or stopped, a state change."""

    kind: EventKind
    at: float
    text: str = ""
    interrupted: bool = False
    source: str = "script"


class AvatarEventListeners:
    """The listeners of one source of avatar events; one that raises is logged, the rest still hear."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[AvatarEvent], None]] = []

    def subscribe(self, listener: Callable[[AvatarEvent], None]) -> Callable[[], None]:
        """Call ``listener`` with every event; returns a function that unsubscribes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def emit(self, event: AvatarEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                logger.exception("avatar event listener failed on %s", event.kind)
