"""The ASGI application: GraphQL (HTTP + both websocket protocols), images, health, metrics, frontend.

Everything is built in the lifespan from `load_settings()` (or the settings
passed to `create_app`) and reaches handlers through `request.app.state`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from db.users import user_by_token
from graph.context import Context
from graph.loaders import Loaders
from graph.playground import Playground
from graph.schema import build_schema
from graph.state import DEV_USER, AppState, app_state
from graph.websocket import LegacyWSHandler, QueryTexts, TransportWSHandler
from jobs.storage import THUMBNAIL_SIZES, is_content_hash
from settings import Settings, load_settings

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_FRONTEND_DIST = Path(__file__).resolve().parent.parent / "frontend" / "dist"
_IMMUTABLE = "public, max-age=31536000, immutable"
_TOKEN_CACHE_S = 30.0


class _Auth:
    """Bearer tokens → users, cached briefly so a burst of requests costs one query."""

    def __init__(self, state: AppState) -> None:
        self._state = state
        self._cache: dict[str, tuple[float, Any]] = {}

    async def viewer(self, token: str | None) -> Any:
        settings = self._state.settings
        if not token:
            if settings.dev_mode and settings.dev_token is not None:
                token = settings.dev_token.get_secret_value()  # local development: the dev user
            else:
                return None
        hit = self._cache.get(token)
        now = time.monotonic()
        if hit is not None and now - hit[0] < _TOKEN_CACHE_S:
            return hit[1]
        async with self._state.sessions() as session:
            user = await user_by_token(session, token=token)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token] = (now, user)
        return user


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


_JSON = json.JSONEncoder(separators=(",", ":"))


class SafelightGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.query_texts = QueryTexts()
        self._last_data: object = None
        self._last_payload = ""

    playground: Playground | None = None

    async def render_graphql_ide(self, request: Request) -> Response:
        """GET /graphql from a browser: the playground from the frontend build (graph/playground.py), not a CDN."""
        return self.playground.response() if self.playground else await super().render_graphql_ide(request)

    def encode_json(self, data: object) -> str:
        """Compact JSON from one encoder; results' `next`/`data` messages through `frame`."""
        if type(data) is dict and (kind := data.get("type")) in ("next", "data"):
            payload = data.get("payload")
            if type(payload) is dict and len(payload) == 1 and payload.get("data") is not None:
                return self.frame(kind, data.get("id"), payload["data"])
        return _JSON.encode(data)

    def frame(self, kind: str, operation_id: object, data: object) -> str:
        """A `next` (or legacy `data`) message; one event's payload is encoded once for all its subscribers.

        Subscribers of the same event and operation receive the same result object
        (graph/execution.py) one after another, so the last payload's encoding is kept and only each
        message's envelope (its operation id) is encoded again. Holding the last data also keeps its
        id from being reused by another object.
        """
        if data is not self._last_data:
            self._last_data, self._last_payload = data, _JSON.encode({"data": data})
        return f'{{"type":"{kind}","id":{_JSON.encode(operation_id)},"payload":{self._last_payload}}}'

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        state: AppState = request.app.state.safelight
        context = Context(state=state, request=request, response=response, loaders=Loaders.create(state.sessions))
        if isinstance(request, Request):
            context.viewer_row = await request.app.state.auth.viewer(_bearer(request.headers.get("authorization")))
        else:
            request.scope["safelight.contexts"].append(context)
        return context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await super().__call__(scope, receive, send)
            return
        contexts: list[Context] = []
        scope["safelight.contexts"] = contexts
        try:
            await super().__call__(scope, receive, send)
        finally:
            # The connection is gone: whatever its operations still hold is released now.
            for context in contexts:
                for listener in list(context.listeners):
                    context.release(listener)

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        params = context.connection_params or {}
        raw = params.get("authorization") or params.get("Authorization") or params.get("token")
        token = _bearer(str(raw)) if raw and " " in str(raw) else (str(raw) if raw else None)
        viewer = await context.request.app.state.auth.viewer(token)
        if viewer is None:
            raise ConnectionRejectionError({"message": "a valid API token is required in connection_init"})
        context.viewer_row = viewer
        context.connection_params = None  # read once; not kept for the connection's life
        return None


async def _image(request: Request) -> Response:
    content_hash = request.path_params["content_hash"]
    if not is_content_hash(content_hash):
        return PlainTextResponse("not found", status_code=404)
    state: AppState = request.app.state.safelight
    path = state.store.path_for(content_hash)
    if not await asyncio.to_thread(path.is_file):
        return PlainTextResponse("not found", status_code=404)
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": _IMMUTABLE})


async def _thumbnail(request: Request) -> Response:
    content_hash = request.path_params["content_hash"]
    size = request.path_params["size"]
    if not is_content_hash(content_hash) or size not in THUMBNAIL_SIZES:
        return PlainTextResponse("not found", status_code=404)
    state: AppState = request.app.state.safelight
    path = await state.store.thumbnail(content_hash, size)
    if path is None:
        return PlainTextResponse("not found", status_code=404)
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": _IMMUTABLE})


async def _preview(request: Request) -> Response:
    token = request.path_params["token"]
    state: AppState = request.app.state.safelight
    if not (8 <= len(token) <= 64) or not token.replace("-", "").replace("_", "").isalnum():
        return PlainTextResponse("not found", status_code=404)
    data = await state.redis.get(state.keys.preview(token))
    if data is None:
        return PlainTextResponse("expired", status_code=404)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


async def _not_found(request: Request) -> Response:
    return PlainTextResponse("not found", status_code=404)


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _readyz(request: Request) -> Response:
    state: AppState = request.app.state.safelight
    checks: dict[str, str] = {}
    try:
        async with state.sessions() as session:
            await session.execute(text("select 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await state.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    catalog = await state.catalogs.get()
    checks["backends"] = "ok" if catalog is not None else "error: no ComfyUI backend reachable"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


async def _metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def _dev_token(request: Request) -> Response:
    """Dev mode only: hand the local user's token to the browser, so nobody copies it by hand."""
    state: AppState = request.app.state.safelight
    settings = state.settings
    client = request.client.host if request.client else ""
    if not settings.dev_mode or settings.dev_token is None or client not in ("127.0.0.1", "::1", "localhost"):
        return PlainTextResponse("not found", status_code=404)
    return JSONResponse({"token": settings.dev_token.get_secret_value(), "user": DEV_USER})


def _registry(state: AppState) -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge("safelight_subscribers", "Live event listeners in this API process", registry=registry).set_function(
        lambda: state.hub.listener_count
    )
    Gauge("safelight_bus_messages", "Bus messages received by this API process", registry=registry).set_function(
        lambda: state.hub.received
    )
    return registry


class _SpaFiles(StaticFiles):
    """The built frontend; unknown paths get index.html so client-side routes survive a reload."""

    async def get_response(self, path: str, scope: Any) -> Response:
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:  # Starlette raises its 404 rather than returning it
            if exc.status_code != 404:
                raise
            return await super().get_response("index.html", scope)
        if response.status_code == 404:
            return await super().get_response("index.html", scope)
        return response


def create_app(settings: Settings | None = None, *, frontend_dir: Path | None = None) -> Starlette:
    """The API; `settings` default to `load_settings()` (read when the app is created, not on import)."""
    effective = settings or load_settings()
    graphql = SafelightGraphQL(
        build_schema(max_depth=effective.graphql_max_depth),
        graphql_ide="graphiql",
        subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL],
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with app_state(effective) as state:
            app.state.safelight = state
            app.state.auth = _Auth(state)
            app.state.metrics = _registry(state)
            yield

    routes: list[BaseRoute] = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/images/{content_hash}", _image),
        Route("/thumbs/{size:int}/{content_hash}", _thumbnail),
        Route("/previews/{token}", _preview),
        Route("/healthz", _healthz),
        Route("/readyz", _readyz),
        Route("/metrics", _metrics),
        Route("/dev/token", _dev_token),
        # Anything else under these prefixes is a missing file, never the app's index page.
        *(Route(f"/{prefix}/{{rest:path}}", _not_found) for prefix in ("images", "thumbs", "previews", "dev")),
    ]
    dist = frontend_dir or _FRONTEND_DIST
    graphql.playground = Playground(dist)
    if (dist / "index.html").is_file():
        routes.append(Mount("/", app=_SpaFiles(directory=dist, html=True)))
    middleware = []
    if effective.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware, allow_origins=list(effective.cors_origins), allow_headers=["*"], allow_methods=["*"]
            )
        )
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
