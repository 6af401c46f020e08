"""The Starlette application: routes, static pages and the lifespan that owns the switchboard."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from telepresence.auth import TokenAuthority, load_or_create_secret
from telepresence.config import Settings
from telepresence.metrics import Metrics
from telepresence.signalling import serve_socket
from telepresence.store import create_store
from telepresence.switchboard import Switchboard

logger = logging.getLogger(__name__)

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def authority_for(settings: Settings) -> TokenAuthority:
    """The token authority for these settings (env secret, or the one stored in state_dir)."""
    return TokenAuthority(load_or_create_secret(settings.secret, settings.state_dir / "secret"))


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the app. State lives on ``app.state``, created and torn down by the lifespan."""
    settings = settings or Settings.load()
    authority = authority_for(settings)
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = create_store(settings.store)
        switchboard = Switchboard(settings, store, authority, metrics)
        await switchboard.start()
        app.state.switchboard = switchboard
        app.state.started_at = time.time()
        try:
            yield
        finally:
            await switchboard.stop()
            await store.close()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics_endpoint(request: Request) -> Response:
        request.app.state.switchboard.refresh_gauges()
        return Response(metrics.render(), media_type=PROMETHEUS_TEXT)

    async def api_status(request: Request) -> Response:
        return JSONResponse(request.app.state.switchboard.status_report())

    async def websocket_endpoint(websocket: WebSocket) -> None:
        await serve_socket(websocket, websocket.app.state.switchboard, settings, metrics)

    def page(name: str):  # noqa: ANN202 - a small route factory
        async def endpoint(request: Request) -> Response:
            path = settings.web_root / name
            if not path.is_file():
                return PlainTextResponse(f"{name} is missing from {settings.web_root}", status_code=404)
            return FileResponse(path, headers={"Cache-Control": "no-cache"})

        return endpoint

    routes = [
        Route("/", page("index.html")),
        Route("/agent", page("agent.html")),
        Route("/widget.js", page("widget.js")),
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint),
        Route("/api/status", api_status),
        WebSocketRoute("/ws", websocket_endpoint),
        Mount("/static", StaticFiles(directory=settings.web_root, check_dir=False), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.settings = settings
    app.state.authority = authority
    app.state.metrics = metrics
    return app
