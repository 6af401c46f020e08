"""WHIP and WHEP sessions: their limits, their answers, and every way they end.

telepresence.media_doors is the HTTP side; this is what a session is once its request passes:
a place reserved under the limits (per token, in all), the offer answered with the door's
wiring and the DTLS server role, and an ending, exactly once, for whichever comes first:
``DELETE``, a peer that fails or closes, a peer silent for ``media_door_idle_s``, or a door
that says what the session carried is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiortc import RTCIceServer, RTCPeerConnection, RTCRtpTransceiver
from aiortc.sdp import SessionDescription

from media import aiortc_internals as internals
from media.answer import IceGathering, MediaError, close_peer, receive_offer
from media.congestion import FeedbackSender
from telepresence.auth import Claims
from telepresence.config import Settings

logger = logging.getLogger(__name__)

SWEEP_S = 1.0  # how often sessions are checked for a vanished peer
RETRY_AFTER_S = 5
# What a media error from answering an offer means in HTTP.
MEDIA_STATUS = {"bad_sdp": 400, "unsupported_codec": 422, "no_video": 422}


class DoorError(Exception):
    """A request the door refuses: ``status`` and a reason for people."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass
class Opened:
    """What a door made of an offer. ``alive``: False once what the session feeds or reads is
    gone (the host stopped, another studio took over); ``undo``: its effects undone before its
    peer closes (an agent's camera given back to the browser)."""

    alive: Callable[[], bool] = lambda: True
    undo: Callable[[], Awaitable[None]] | None = None


class Door(Protocol):
    """One endpoint's meaning. ``roles``: the token roles it takes; ``publishes``: WHIP (the
    client sends media) rather than WHEP. A door that owns something may have an async
    ``close()``, awaited when the doors close."""

    roles: tuple[str, ...]
    publishes: bool

    def token_required(self) -> bool: ...

    async def open(
        self,
        session: Session,
        pc: RTCPeerConnection,
        audio: list[RTCRtpTransceiver],
        video: list[RTCRtpTransceiver],
    ) -> Opened:
        """Wire the offer's sections (applied to ``pc``, not yet answered). Raises DoorError."""
        ...


@dataclass(eq=False)
class Session:
    """One WHIP or WHEP session: a peer, who opened it, and how it ends."""

    id: str
    path: str  # its door's path; the session's own is path/id
    claims: Claims | None
    # SHA-256 of the bearer token that opened it (None: opened without one): only that token
    # ends it, so knowing a session's id is not enough, nor is another token of the same name.
    token_digest: bytes | None = None
    pc: RTCPeerConnection | None = None
    opened: Opened = field(default_factory=Opened)
    feedback: FeedbackSender | None = None
    received: int = -1  # packets the peer had sent at the last sweep
    heard_at: float = field(default_factory=time.monotonic)
    ending: asyncio.Task[None] | None = None

    @property
    def location(self) -> str:
        return f"{self.path}/{self.id}"

    def opened_with(self, token: str | None) -> bool:
        """Whether ``token`` is the one that opened this session (any, if none did)."""
        if self.token_digest is None:
            return True
        return token is not None and hmac.compare_digest(self.token_digest, token_digest(token))

    @property
    def owner(self) -> tuple[str, str, str] | None:
        return None if self.claims is None else (self.path, self.claims.role, self.claims.name)


class DoorSessions:
    """Every open WHIP/WHEP session. :meth:`close` ends them all and refuses new ones."""

    def __init__(
        self,
        settings: Settings,
        *,
        server_ice_servers: Callable[[str], list[dict[str, Any]]],
        ice_policy: str,
        gathering: IceGathering,
    ) -> None:
        self.settings = settings
        self.sessions: dict[str, Session] = {}
        self._server_ice_servers = server_ice_servers
        self._ice_policy = ice_policy
        self._gathering = gathering
        self._sweeper: asyncio.Task[None] | None = None
        # Every ending under way: a session leaves ``sessions`` as its ending starts, and
        # close() still awaits it (a session timed out as the server stops).
        self._endings: set[asyncio.Task[None]] = set()
        self._closing = False

    def reserve(self, path: str, claims: Claims | None, token: str | None = None) -> Session:
        """A place for one more session, or 429 / 503. Taken before the offer is answered, so
        requests arriving together cannot all pass the limit."""
        if self._closing:
            raise DoorError(503, "the server is shutting down", {"Retry-After": str(RETRY_AFTER_S)})
        if len(self.sessions) >= self.settings.media_door_sessions_max:
            raise DoorError(
                503, "the server has all the sessions it takes", {"Retry-After": str(RETRY_AFTER_S)}
            )
        anonymous_max = min(self.settings.media_door_anonymous_max, self.settings.media_door_sessions_max)
        if claims is None and sum(1 for s in self.sessions.values() if s.claims is None) >= anonymous_max:
            raise DoorError(
                503,
                "the places for viewers without a token are all taken",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        digest = None if token is None else token_digest(token)
        session = Session(secrets.token_urlsafe(18), path, claims, digest)
        if session.owner is not None:
            mine = sum(1 for s in self.sessions.values() if s.owner == session.owner)
            if mine >= self.settings.media_door_sessions_per_token:
                raise DoorError(
                    429,
                    f"{claims.name} has {mine} sessions open here already (DELETE one first)",  # type: ignore[union-attr]
                    {"Retry-After": str(RETRY_AFTER_S)},
                )
        self.sessions[session.id] = session
        return session

    async def answer(self, door: Door, session: Session, offer: str) -> str:
        ice = [RTCIceServer(**server) for server in self._server_ice_servers(f"door-{session.id}")]
        try:
            pc, audio, video = await receive_offer(offer, ice, self._ice_policy, self._gathering)
        except MediaError as exc:
            raise DoorError(MEDIA_STATUS.get(exc.code, 400), exc.message) from None
        session.pc = pc
        try:
            if not _takes_dtls_server_role(offer):  # an offer saying passive gets active
                internals.answer_as_dtls_server(pc)
            session.opened = await door.open(session, pc, audio, video)
            await pc.setLocalDescription(await pc.createAnswer())
            if self._closing:
                raise DoorError(503, "the server is shutting down")
            if door.publishes:
                feedback = FeedbackSender(pc, session.id)
                session.feedback = feedback if feedback.start() else None
        except BaseException as exc:
            await self._finish(session)
            if isinstance(exc, DoorError | asyncio.CancelledError):
                raise
            logger.exception("%s: answering failed", session.id)
            raise DoorError(400, f"the offer could not be answered: {exc}") from None
        pc.on("connectionstatechange", lambda: self._on_state(session))
        self._start_sweeper()
        return pc.localDescription.sdp

    def _on_state(self, session: Session) -> None:
        pc = session.pc
        if pc is not None and pc.connectionState in ("failed", "closed"):
            self._spawn_end(session, f"connection {pc.connectionState}")

    def _start_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="media doors sweeper")

    async def _sweep(self) -> None:
        """End sessions whose peer went silent or whose purpose is gone; stop when none are left."""
        while self.sessions:
            await asyncio.sleep(SWEEP_S)
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if session.pc is None or session.ending is not None:
                    continue  # still being answered, or already ending
                try:
                    alive = session.opened.alive()
                    received = await _packets_received(session.pc)
                except Exception:
                    logger.exception("%s: checking the session failed; it ends", session.id)
                    alive, received = False, session.received
                if received != session.received:
                    session.received, session.heard_at = received, now
                if not alive:
                    self._spawn_end(session, "what it carried is gone")
                elif now - session.heard_at > self.settings.media_door_idle_s:
                    self._spawn_end(
                        session, f"nothing from its peer for {self.settings.media_door_idle_s:g} s"
                    )

    def _spawn_end(self, session: Session, reason: str) -> None:
        if session.ending is None and session.id in self.sessions:
            session.ending = asyncio.get_running_loop().create_task(
                self._end(session, reason), name=f"end {session.id}"
            )
            self._endings.add(session.ending)
            session.ending.add_done_callback(self._endings.discard)

    async def end(self, session: Session, reason: str) -> None:
        """End ``session`` (once; a second call awaits the first)."""
        self._spawn_end(session, reason)
        if session.ending is not None:
            await asyncio.shield(session.ending)

    async def _end(self, session: Session, reason: str) -> None:
        logger.info("%s %s: ended (%s)", session.path, session.id, reason)
        await self._finish(session)

    async def _finish(self, session: Session) -> None:
        """Undo the session's effects, stop what it sends, close its peer; never raises."""
        self.sessions.pop(session.id, None)
        # Each step on its own: an undo that fails or hangs must not leave the peer open.
        if session.opened.undo is not None:
            await self._step(session, "undoing its effects", session.opened.undo)
        if session.feedback is not None:
            await self._step(session, "stopping its feedback", session.feedback.stop)
        if session.pc is not None:
            await self._step(session, "closing its peer", lambda: _close(session.pc))  # type: ignore[arg-type]

    async def _step(self, session: Session, what: str, step: Callable[[], Awaitable[None]]) -> None:
        try:
            async with asyncio.timeout(self.settings.shutdown_timeout_s):
                await step()
        except Exception:
            logger.exception("%s: %s failed", session.id, what)

    async def close(self) -> None:
        """Refuse new sessions, end every open one, stop the sweeper."""
        self._closing = True
        for session in list(self.sessions.values()):
            if session.pc is not None:
                self._spawn_end(session, "the server is stopping")
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._endings:
            await asyncio.wait(set(self._endings))


def _takes_dtls_server_role(offer: str) -> bool:
    """Whether the offer (already applied, so parseable) says ``a=setup:passive``."""
    return any(m.dtls is not None and m.dtls.role == "server" for m in SessionDescription.parse(offer).media)


async def _close(pc: RTCPeerConnection) -> None:
    for transceiver in pc.getTransceivers():
        if transceiver.sender.track is not None:
            transceiver.sender.track.stop()
    await close_peer(pc)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


async def _packets_received(pc: RTCPeerConnection) -> int:
    """Every datagram the peer's transport has had (media, RTCP): growing while the peer lives."""
    stats = await pc.getStats()
    return max(
        (getattr(s, "packetsReceived", 0) or 0 for s in stats.values() if s.type == "transport"), default=0
    )
