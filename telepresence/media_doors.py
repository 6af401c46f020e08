"""WHIP and WHEP (RFC 9725): the HTTP side every standard media door shares.

A door is one endpoint (``/whip/studio``, ``/whip/agent``, ``/whep/host``) and knows only
what a stream in or out means for it (:class:`Door`). Everything else is here, once:

- ``POST`` application/sdp with ``Authorization: Bearer TOKEN`` answers ``201 Created``
  with the SDP answer, a ``Location`` to ``DELETE`` to end the session and, where TURN is
  configured, ``Link`` headers with the client's own ICE servers; the answer holds every
  candidate (aiortc gathers fully: no trickle, ``PATCH`` is 405) and says
  ``a=setup:passive`` (the DTLS server role, which GStreamer's DTLS needs from aiortc);
- ``OPTIONS`` (CORS preflight) on every path; every response allows any origin (bearer
  tokens, no cookies);
- errors as HTTP says: 400 bad SDP, 401 no or bad token, 403 a token of another role,
  404 unknown session, 405, 413, 415, 422 nothing usable offered, 429 past the sessions
  allowed a token, 503 past the server's; each with a plain-text reason;
- a session ends on ``DELETE``, when its peer fails or closes, when its peer has sent
  nothing (media, RTCP, consent checks) for ``media_door_idle_s`` (a publisher that
  vanished), or when what it feeds is gone (the door says: :attr:`Opened.alive`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiortc import RTCIceServer, RTCPeerConnection, RTCRtpTransceiver
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from media import aiortc_internals as internals
from media.answer import IceGathering, MediaError, close_peer, receive_offer
from media.congestion import FeedbackSender
from telepresence.auth import TOKEN_ROLES, AuthError, Claims, TokenAuthority
from telepresence.config import Settings
from telepresence.turn import IceConfig

logger = logging.getLogger(__name__)

SDP = "application/sdp"
EVERY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
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
    pc: RTCPeerConnection | None = None
    opened: Opened = field(default_factory=Opened)
    feedback: FeedbackSender | None = None
    received: int = -1  # packets the peer had sent at the last sweep
    heard_at: float = field(default_factory=time.monotonic)
    ending: asyncio.Task[None] | None = None

    @property
    def location(self) -> str:
        return f"{self.path}/{self.id}"

    @property
    def owner(self) -> tuple[str, str, str] | None:
        return None if self.claims is None else (self.path, self.claims.role, self.claims.name)


class MediaDoors:
    """Every open WHIP/WHEP session, the doors they came through, and their limits.

    Made by the app's lifespan; :meth:`close` ends every session.
    """

    def __init__(
        self,
        settings: Settings,
        authority: TokenAuthority,
        doors: Mapping[str, Door],
        *,
        server_ice_servers: Callable[[str], list[dict[str, Any]]],
        gathering: IceGathering,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.doors = dict(doors)
        self.sessions: dict[str, Session] = {}
        self._authority = authority
        self._ice = IceConfig.from_settings(settings)
        self._server_ice_servers = server_ice_servers
        self._gathering = gathering
        self._wall_clock = wall_clock
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False

    # ------------------------------------------------------------------ HTTP

    async def handle(self, request: Request) -> Response:
        """Any request to a door's path or a session's (``/whip/agent``, ``/whip/agent/ID``)."""
        door_path, session_id = _split(request.url.path, self.doors)
        try:
            if door_path is None:
                raise DoorError(404, "no such media door")
            if request.method == "OPTIONS":
                return self._response(204, "", methods=_allowed(session_id))
            if session_id is None:
                if request.method != "POST":
                    raise DoorError(405, f"{door_path} takes POST (an SDP offer)", _allow(None))
                return await self._post(request, door_path)
            if request.method != "DELETE":
                # PATCH too: trickle ICE and ICE restarts are not supported (RFC 9725 section 4.3).
                raise DoorError(405, "a session takes DELETE (to end it)", _allow(session_id))
            return await self._delete(door_path, session_id)
        except DoorError as exc:
            return self._response(exc.status, exc.message + "\n", headers=exc.headers)

    async def _post(self, request: Request, path: str) -> Response:
        door = self.doors[path]
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != SDP:
            raise DoorError(415, f"send the offer as {SDP}, not {content_type or 'nothing'}")
        claims = self._claims(request, door)
        offer = await _read_sdp(request, self.settings.max_message_bytes)
        session = self._reserve(path, claims)
        try:
            answer = await self._answer(door, session, offer)
        except BaseException:
            self.sessions.pop(session.id, None)
            raise
        headers = {"Location": session.location, "Content-Type": SDP}
        links = self._links(session.id)
        response = self._response(201, answer, headers=headers)
        for link in links:
            response.headers.append("Link", link)
        logger.info("%s %s: opened by %s", path, session.id, _who(claims))
        return response

    async def _delete(self, path: str, session_id: str) -> Response:
        session = self.sessions.get(session_id)
        if session is None or session.path != path:
            raise DoorError(404, "no such session (it ended, or never was)")
        await self.end(session, "DELETE")
        return self._response(200, "")

    def _claims(self, request: Request, door: Door) -> Claims | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            if door.token_required():
                raise DoorError(401, "send a token as 'Authorization: Bearer TOKEN'", _challenge())
            return None
        if scheme.lower() != "bearer" or not token.strip():
            raise DoorError(401, "send a token as 'Authorization: Bearer TOKEN'", _challenge())
        try:
            claims = self._authority.verify(token.strip(), time.time(), roles=(*TOKEN_ROLES, "customer"))
        except AuthError as exc:
            raise DoorError(401, str(exc), _challenge("invalid_token")) from None
        if claims.role not in door.roles:
            raise DoorError(
                403, f"a {claims.role} token cannot be used here (this door takes {_or(door.roles)})"
            )
        return claims

    def _reserve(self, path: str, claims: Claims | None) -> Session:
        """A place for one more session, or 429 / 503. Taken before the offer is answered, so
        requests arriving together cannot all pass the limit."""
        if self._closing:
            raise DoorError(503, "the server is shutting down", {"Retry-After": str(RETRY_AFTER_S)})
        if len(self.sessions) >= self.settings.media_door_sessions_max:
            raise DoorError(
                503, "the server has all the sessions it takes", {"Retry-After": str(RETRY_AFTER_S)}
            )
        session = Session(secrets.token_urlsafe(18), path, claims)
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

    async def _answer(self, door: Door, session: Session, offer: str) -> str:
        ice = [RTCIceServer(**server) for server in self._server_ice_servers(f"door-{session.id}")]
        try:
            pc, audio, video = await receive_offer(offer, ice, self._ice.policy, self._gathering)
        except MediaError as exc:
            raise DoorError(MEDIA_STATUS.get(exc.code, 400), exc.message) from None
        session.pc = pc
        try:
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

    def _links(self, session_id: str) -> list[str]:
        """The client's ICE servers as RFC 9725 ``Link`` headers (TURN credentials its own)."""
        links = []
        for server in self._ice.ice_servers(f"door-{session_id}", self._wall_clock()):
            urls = server["urls"] if isinstance(server["urls"], list) else [server["urls"]]
            for url in urls:
                link = f'<{url}>; rel="ice-server"'
                if "username" in server:
                    link += (
                        f'; username="{server["username"]}"; credential="{server["credential"]}"'
                        '; credential-type="password"'
                    )
                links.append(link)
        return links

    @staticmethod
    def _response(
        status: int, body: str, *, headers: Mapping[str, str] | None = None, methods: str | None = None
    ) -> Response:
        cors = {
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Expose-Headers": "Location, Link",
        }
        if methods is not None:
            cors |= {
                "Allow": methods,
                "Access-Control-Allow-Methods": methods,
                "Access-Control-Allow-Headers": "Authorization, Content-Type",
                "Access-Control-Max-Age": "86400",
            }
        merged = cors | dict(headers or {})
        if status == 201:
            return Response(body, status_code=201, headers=merged, media_type=SDP)
        return PlainTextResponse(body, status_code=status, headers=merged)

    # -------------------------------------------------------------- endings

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
        try:
            async with asyncio.timeout(self.settings.shutdown_timeout_s):
                if session.opened.undo is not None:
                    await session.opened.undo()
                if session.feedback is not None:
                    await session.feedback.stop()
                if session.pc is not None:
                    for transceiver in session.pc.getTransceivers():
                        if transceiver.sender.track is not None:
                            transceiver.sender.track.stop()
                    await close_peer(session.pc)
        except Exception:
            logger.exception("%s: ending the session failed", session.id)

    async def close(self) -> None:
        """Refuse new sessions, end every open one, stop the sweeper."""
        self._closing = True
        for session in list(self.sessions.values()):
            if session.pc is not None:
                self._spawn_end(session, "the server is stopping")
        endings = [s.ending for s in self.sessions.values() if s.ending is not None]
        if endings:
            await asyncio.wait(endings)
        for door in self.doors.values():
            closing = getattr(door, "close", None)  # a door that owns something of its own
            if closing is not None:
                await closing()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper


def door_routes(paths: list[str]) -> list[Route]:
    """Routes for these doors and their sessions; the app's ``state.doors`` answers them (None:
    a centre of many processes, where the doors do not run in this version)."""

    async def endpoint(request: Request) -> Response:
        doors: MediaDoors | None = getattr(request.app.state, "doors", None)
        if doors is None:
            return PlainTextResponse(
                "WHIP and WHEP run on a single-process centre (no --redis) in this version\n",
                status_code=501,
                headers={"Access-Control-Allow-Origin": "*"},
            )
        return await doors.handle(request)

    routes = []
    for path in paths:
        routes += [
            Route(path, endpoint, methods=EVERY_METHOD),
            Route(path + "/{session_id}", endpoint, methods=EVERY_METHOD),
        ]
    return routes


def _split(path: str, doors: Mapping[str, Door]) -> tuple[str | None, str | None]:
    for door_path in doors:
        if path == door_path:
            return door_path, None
        if path.startswith(door_path + "/") and "/" not in path[len(door_path) + 1 :]:
            return door_path, path[len(door_path) + 1 :]
    return None, None


def _allowed(session_id: str | None) -> str:
    return "POST, OPTIONS" if session_id is None else "DELETE, OPTIONS"


def _allow(session_id: str | None) -> dict[str, str]:
    return {"Allow": _allowed(session_id)}


def _challenge(error: str | None = None) -> dict[str, str]:
    return {"WWW-Authenticate": "Bearer" + (f' error="{error}"' if error else "")}


def _or(roles: tuple[str, ...]) -> str:
    return " or ".join(f"{role}" for role in roles)


def _who(claims: Claims | None) -> str:
    return "an anonymous viewer" if claims is None else f"{claims.role} {claims.name}"


async def _read_sdp(request: Request, limit: int) -> str:
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise DoorError(413, f"an offer is limited to {limit} bytes")
        chunks.append(chunk)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise DoorError(400, "the offer is not UTF-8 text") from None


async def _packets_received(pc: RTCPeerConnection) -> int:
    """Every datagram the peer's transport has had (media, RTCP): growing while the peer lives."""
    stats = await pc.getStats()
    return max(
        (getattr(s, "packetsReceived", 0) or 0 for s in stats.values() if s.type == "transport"), default=0
    )
