"""WHIP and WHEP (RFC 9725): the HTTP side every standard media door shares.

A door is one endpoint (``/whip/studio``, ``/whip/agent``, ``/whep/host``) and knows only
what a stream in or out means for it (:class:`~telepresence.door_sessions.Door`). The HTTP
side is here, once; what a session is once its request passes, in telepresence.door_sessions:

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
  vanished), or when what it feeds is gone (the door says: ``Opened.alive``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from media.answer import IceGathering
from telepresence.auth import TOKEN_ROLES, AuthError, Claims, TokenAuthority
from telepresence.config import Settings
from telepresence.door_sessions import Door, DoorError, DoorSessions, Session
from telepresence.turn import IceConfig

logger = logging.getLogger(__name__)

SDP = "application/sdp"
EVERY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


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
        self._authority = authority
        self._ice = IceConfig.from_settings(settings)
        self._wall_clock = wall_clock
        self.book = DoorSessions(
            settings, server_ice_servers=server_ice_servers, ice_policy=self._ice.policy, gathering=gathering
        )

    @property
    def sessions(self) -> dict[str, Session]:
        """Every open session, by id."""
        return self.book.sessions

    # ------------------------------------------------------------------ HTTP

    async def handle(self, request: Request) -> Response:
        """Any request to a door's path or a session's (``/whip/agent``, ``/whip/agent/ID``)."""
        pattern, door_path, session_id = _split(request.url.path, self.doors)
        try:
            if pattern is None or door_path is None:
                raise DoorError(404, "no such media door")
            if request.method == "OPTIONS":
                return self._response(204, "", methods=_allowed(session_id))
            if session_id is None:
                if request.method != "POST":
                    raise DoorError(405, f"{door_path} takes POST (an SDP offer)", _allow(None))
                return await self._post(request, pattern, door_path)
            if request.method != "DELETE":
                # PATCH too: trickle ICE and ICE restarts are not supported (RFC 9725 section 4.3).
                raise DoorError(405, "a session takes DELETE (to end it)", _allow(session_id))
            return await self._delete(request, door_path, session_id)
        except DoorError as exc:
            return self._response(exc.status, exc.message + "\n", headers=exc.headers)

    async def _post(self, request: Request, pattern: str, path: str) -> Response:
        door = self.doors[pattern]
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != SDP:
            raise DoorError(415, f"send the offer as {SDP}, not {content_type or 'nothing'}")
        claims, token = self._claims(request, door)
        offer = await _read_sdp(request, self.settings.max_message_bytes)
        session = self.book.reserve(path, claims, token)
        try:
            answer = await self.book.answer(door, session, offer)
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

    async def _delete(self, request: Request, path: str, session_id: str) -> Response:
        session = self.sessions.get(session_id)
        if session is None or session.path != path:
            raise DoorError(404, "no such session (it ended, or never was)")
        token = _bearer(request)
        if not session.opened_with(token):
            if token is None:
                raise DoorError(401, "send the token that opened the session", _challenge())
            # Another token learns nothing of a session that is not its own.
            raise DoorError(404, "no such session (it ended, or never was)")
        await self.book.end(session, "DELETE")
        return self._response(200, "")

    def _claims(self, request: Request, door: Door) -> tuple[Claims | None, str | None]:
        """The request's claims and its bearer token (None, None: no token, where none is needed)."""
        token = _bearer(request)
        if token is None:
            if door.token_required():
                raise DoorError(401, "send a token as 'Authorization: Bearer TOKEN'", _challenge())
            return None, None
        try:
            claims = self._authority.verify(token, time.time(), roles=(*TOKEN_ROLES, "customer"))
        except AuthError as exc:
            raise DoorError(401, str(exc), _challenge("invalid_token")) from None
        if claims.role not in door.roles:
            raise DoorError(
                403, f"a {claims.role} token cannot be used here (this door takes {_or(door.roles)})"
            )
        return claims, token

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

    async def close(self) -> None:
        """End every session (refusing new ones), then let each door close what it owns."""
        await self.book.close()
        for door in self.doors.values():
            closing = getattr(door, "close", None)
            if closing is not None:
                await closing()


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


def _split(path: str, doors: Mapping[str, Door]) -> tuple[str | None, str | None, str | None]:
    """The door's key (its path, maybe with ``{name}`` segments: ``/whep/call/{call_id}``), the
    door's path as asked for, and the session's id (None: the door itself); all None: no door."""
    asked = path.split("/")
    for pattern in doors:
        wanted = pattern.split("/")
        if len(asked) not in (len(wanted), len(wanted) + 1):
            continue
        if all(w == a or (w.startswith("{") and a) for w, a in zip(wanted, asked, strict=False)):
            session_id = asked[len(wanted)] if len(asked) > len(wanted) else None
            if session_id == "":
                return None, None, None
            return pattern, "/".join(asked[: len(wanted)]), session_id
    return None, None, None


def _bearer(request: Request) -> str | None:
    """The request's bearer token; None without an Authorization header; 401 for another kind."""
    header = request.headers.get("authorization", "")
    if not header.strip():
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise DoorError(401, "send a token as 'Authorization: Bearer TOKEN'", _challenge())
    return token.strip()


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
