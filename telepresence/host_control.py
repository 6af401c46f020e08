"""Operators' control of the live avatar host, over the WebSocket and the HTTP API alike.

Both doors parse the same protocol messages (``host_start``, ``host_command``, ...)
and come here, so a brand's script runner and the studio page get the same
behaviour and the same errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from media.answer import MediaError
from telepresence import protocol as p
from telepresence.calls import Call
from telepresence.hosts import Host, HostDesk, resolve_look
from telepresence.media_control import MediaControl
from telepresence.protocol import ProtocolError

logger = logging.getLogger(__name__)

Message = dict[str, Any]
NOT_RUNNING: Message = {"type": "host_status", "running": False}


class HostControl:
    """Applies operator messages to the :class:`HostDesk` and to the calls the host greets."""

    def __init__(
        self,
        media: MediaControl,
        *,
        send_operator: Callable[[str | None, Message], None],
        active_calls: Callable[[], list[Call]],
    ) -> None:
        self.desk = media.hosts
        self._media = media
        self._send_operator = send_operator
        self._active_calls = active_calls
        self._unsubscribe: Callable[[], None] | None = None

    def status(self) -> Message:
        host = self.desk.host
        return host.status() if host is not None else dict(NOT_RUNNING)

    async def handle(self, operator: str, message: p.ClientMessage) -> Message | None:
        """Carry out one operator message; returns a status to send back, if the message changes it."""
        if isinstance(message, p.HostStart):
            host = await self.desk.start(operator, message.spec)
            # Every operator hears what the host does (voice bursts are their own speech: not news).
            self._unsubscribe = host.subscribe(
                lambda event: self._send_operator(None, event) if event.get("source") != "voice" else None
            )
            return self._broadcast(host.status(), operator)
        if isinstance(message, p.HostStop):
            await self._media.host_stopped(self._active_calls())
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            await self.desk.stop()
            return self._broadcast(dict(NOT_RUNNING), operator)
        host = self.desk.running()
        if isinstance(message, p.HostCommand):
            host.command(message.command)
        elif isinstance(message, p.HostScript):
            host.script(message.text)
        elif isinstance(message, p.HostInterrupt):
            host.interrupt()
        elif isinstance(message, p.HostLook):
            if message.spec is None and message.spec_text is None:
                raise ProtocolError("invalid_spec", "give a look's name (spec) or a spec's text (spec_text)")
            spec = resolve_look(message.spec, message.spec_text, message.format)
            host.set_look(message.spec or "custom", spec)
            return self._broadcast(host.status(), operator)
        elif isinstance(message, p.HostHandover):
            self._media.handover(self._active_calls())
        elif isinstance(message, p.WebRtcOffer):
            await self._studio(host, message.sdp, operator)
        else:
            raise ProtocolError("forbidden", f"operators cannot send {message.type!r}")
        return None

    async def _studio(self, host: Host, sdp: str, operator: str) -> None:
        """The sending operator's studio drives the host from now on (one studio at a time)."""
        try:
            answer = await host.studio_answer(sdp)
        except MediaError as exc:
            raise ProtocolError(exc.code, exc.message) from None
        host.operator = operator
        self._send_operator(operator, {"type": "webrtc_answer", "host_id": host.id, "sdp": answer})

    def _broadcast(self, status: Message, sender: str) -> Message:
        """Tell the other operators too; the sender gets ``status`` as the reply."""
        self._send_operator(None, {**status, "except": sender})
        return status

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        await self.desk.close()


def is_host_message(message: p.ClientMessage) -> bool:
    return isinstance(message, p.HOST_MESSAGES)


__all__ = ["HostControl", "HostDesk", "is_host_message"]
