"""How long a call waits for a side whose media failed to connect again.

A browser that changed networks (Wi-Fi to mobile) offers again on a fresh connection and
the room replaces that side's peer: the call goes on. One that does not within
``media_reconnect_s`` ends the call. One timer per (call, side), owned here and cancelled
when the side connects, the call closes or the server stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from media.room import Role

logger = logging.getLogger(__name__)


class ReconnectWaits:
    """The pending waits for failed sides: (call id, role) -> the timer that gives up."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self._waits: dict[tuple[str, Role], asyncio.TimerHandle] = {}

    def failed(self, call_id: str, role: Role, give_up: Callable[[], None]) -> None:
        """``role``'s media failed: ``give_up`` runs in ``wait_s`` unless it connects again first."""
        key = (call_id, role)
        if key in self._waits:
            return
        logger.warning(
            "%s: %s media failed (ICE or DTLS); waiting %.0f s for it to connect again",
            call_id,
            role,
            self.wait_s,
        )

        def expired() -> None:
            self._waits.pop(key, None)
            give_up()

        self._waits[key] = asyncio.get_running_loop().call_later(self.wait_s, expired)

    def connected(self, call_id: str, role: Role) -> None:
        """``role``'s media connected: a wait for it, if any, ends."""
        if waiting := self._waits.pop((call_id, role), None):
            waiting.cancel()
            logger.info("%s: %s media connected again", call_id, role)

    def call_closed(self, call_id: str) -> None:
        for role in ("agent", "customer"):
            if waiting := self._waits.pop((call_id, role), None):
                waiting.cancel()

    def cancel_all(self) -> None:
        for waiting in self._waits.values():
            waiting.cancel()
        self._waits.clear()
