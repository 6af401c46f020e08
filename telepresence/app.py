"""The Starlette application: routes, static pages and the lifespan that owns the switchboard."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from media import sections
from media.heap import map_large_blocks
from telepresence.auth import AuthError, TokenAuthority, load_or_create_secret
from telepresence.centre.node import CentreNode
from telepresence.config import Settings
from telepresence.door_registry import DOOR_PATHS, open_doors
from telepresence.host_control import is_host_message
from telepresence.media_doors import door_routes
from telepresence.metrics import Metrics
from telepresence.protocol import ProtocolError, parse_client_message
from telepresence.signalling import serve_socket
from telepresence.store import create_store
from telepresence.supervisor_doors import CALLS_API, live_calls
from telepresence.switchboard import Switchboard

logger = logging.getLogger(__name__)

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
SECTIONS_PATH = "/static/js/sections.json"  # web_client/js/session.js imports it as a JSON module


def authority_for(settings: Settings) -> TokenAuthority:
    """The token authority for these settings (env secret, or the one stored in state_dir)."""
    return TokenAuthority(load_or_create_secret(settings.secret, settings.state_dir / "secret"))


UNSUPPORTED_ACROSS_PROCESSES = {
    "type": "error",
    "code": "unsupported",
    "message": "the avatar host runs on a single-process centre (no --redis) in this version",
}


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the app. State lives on ``app.state``, created and torn down by the lifespan."""
    settings = settings or Settings.load()
    secret = load_or_create_secret(settings.secret, settings.state_dir / "secret")
    authority = TokenAuthority(secret)
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        map_large_blocks()  # calls' frames must not fragment the heap (media/heap.py)
        app.state.started_at = time.time()
        if settings.redis_url:
            # One of many processes of one centre (telepresence/centre/).
            centre = CentreNode(settings, authority, metrics, secret)
            await centre.start()
            app.state.centre, app.state.switchboard = centre, None
            try:
                yield
            finally:
                await centre.stop()
            return
        store = create_store(settings.store)
        switchboard = Switchboard(settings, store, authority, metrics)
        await switchboard.start()
        app.state.centre, app.state.switchboard = None, switchboard
        app.state.doors = open_doors(switchboard, settings, authority)  # WHIP and WHEP
        try:
            yield
        finally:
            await app.state.doors.close()
            await switchboard.stop()
            await store.close()

    async def healthz(request: Request) -> Response:
        centre: CentreNode | None = request.app.state.centre
        if centre is None:
            return JSONResponse({"status": "ok"})
        healthy, report = await centre.health()
        return JSONResponse(report, status_code=200 if healthy else 503)

    async def metrics_endpoint(request: Request) -> Response:
        centre: CentreNode | None = request.app.state.centre
        if centre is None:
            request.app.state.switchboard.refresh_gauges()
            return Response(metrics.render(), media_type=PROMETHEUS_TEXT)
        try:
            return Response(await centre.metrics_text(), media_type=PROMETHEUS_TEXT)
        except (RedisError, OSError, TimeoutError):
            _, report = await centre.health()
            return JSONResponse(report, status_code=503)

    async def api_status(request: Request) -> Response:
        centre: CentreNode | None = request.app.state.centre
        if centre is None:
            return JSONResponse(request.app.state.switchboard.status_report())
        try:
            return JSONResponse(await centre.status())
        except (RedisError, OSError, TimeoutError):
            _, report = await centre.health()
            return JSONResponse(report, status_code=503)

    async def host_api(request: Request) -> Response:
        """The brands' control API: the operator messages of the WebSocket, over HTTP."""
        if request.app.state.centre is not None:
            return JSONResponse(UNSUPPORTED_ACROSS_PROCESSES, status_code=501)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not token:
                raise AuthError("send an operator token as 'Authorization: Bearer TOKEN'")
            claims = authority.verify(token, time.time(), roles=("operator",))
        except AuthError as exc:
            return JSONResponse(
                {"type": "error", "code": "auth_failed", "message": str(exc)},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        host_control = request.app.state.switchboard.host_control
        if request.method == "GET":
            return JSONResponse(host_control.status())
        try:
            body = await _read_limited(request, settings.max_message_bytes)
            message = parse_client_message(body)
            if not is_host_message(message):
                raise ProtocolError("forbidden", f"{message.type!r} is not a host message")
            reply = await host_control.handle(claims.name, message)
        except ProtocolError as exc:
            status = {"too_large": 413, "forbidden": 403, "out_of_order": 409}.get(exc.code, 400)
            return JSONResponse(exc.to_message(), status_code=status)
        return JSONResponse(reply or {"type": "ok"})

    async def websocket_endpoint(websocket: WebSocket) -> None:
        state = websocket.app.state
        handler = state.centre.door if state.centre is not None else state.switchboard
        await serve_socket(websocket, handler, settings, metrics)

    def page(name: str):  # noqa: ANN202 - a small route factory
        async def endpoint(request: Request) -> Response:
            path = settings.web_root / name
            if not path.is_file():
                return PlainTextResponse(f"{name} is missing from {settings.web_root}", status_code=404)
            return FileResponse(path, headers={"Cache-Control": "no-cache"})

        return endpoint

    sections_table = sections.as_json()  # a constant table: built once

    async def sections_json(request: Request) -> Response:
        """The media sections each role offers (media/sections.py), for the web client's ES modules."""
        return JSONResponse(sections_table, headers={"Cache-Control": "no-cache"})

    routes = [
        Route("/", page("index.html")),
        Route("/agent", page("agent.html")),
        Route("/studio", page("studio.html")),
        Route("/supervisor", page("supervisor.html")),
        Route("/widget.js", page("widget.js")),
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint),
        Route("/api/status", api_status),
        Route("/api/host", host_api, methods=["GET", "POST"]),
        *door_routes(DOOR_PATHS),
        Route(CALLS_API, live_calls, methods=["GET", "OPTIONS"]),
        WebSocketRoute("/ws", websocket_endpoint),
        # Generated, not a file: before the static mount, which would otherwise answer 404.
        Route(SECTIONS_PATH, sections_json),
        Mount("/static", StaticFiles(directory=settings.web_root, check_dir=False), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.doors = None  # made by the lifespan on a single-process centre
    app.state.settings = settings
    app.state.authority = authority
    app.state.metrics = metrics
    return app


async def _read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it passes ``limit`` bytes (never buffered whole)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProtocolError("too_large", f"messages are limited to {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
