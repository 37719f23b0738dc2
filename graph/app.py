"""The ASGI application: GraphQL (HTTP + both websocket protocols), images, health, metrics, frontend.

Everything is built in the lifespan from `load_settings()` (or the settings
passed to `create_app`) and reaches handlers through `request.app.state`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from cross_web import HTTPException as GraphQLHTTPException
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.datastructures import Headers
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

from db.images import image_with_template_at
from db.models import Image
from db.reachability import ping
from db.users import MAX_TOKEN_LENGTH, hash_token
from graph.auth import Auth, bearer_token
from graph.context import Context
from graph.documents import DocumentLimits
from graph.guards import LOOPBACK_HOSTS, BodyLimit, ConnectionCaps, DevHostGuard, SecurityHeaders, allowed_origin
from graph.loaders import Loaders
from graph.playground import Playground
from graph.request_json import BadRequestJson, decode
from graph.schema import build_schema
from graph.state import DEV_USER, AppState, app_state
from graph.uploads import UPLOAD_PATH, input_routes
from graph.websocket import QueryTexts
from graph.ws_protocol import Rejected, WebSocketServer
from jobs.media import EXTENSIONS, THUMBNAILED_KINDS, sniff_mime
from jobs.storage import THUMBNAIL_SIZES
from settings import Settings, load_settings

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_FRONTEND_DIST = Path(__file__).resolve().parent.parent / "frontend" / "dist"
# Private: an image URL stops answering when its generation is deleted, and no shared cache may keep it.
_IMMUTABLE = "private, max-age=31536000, immutable"
_THUMBNAILED = {kind.value for kind in THUMBNAILED_KINDS}


_JSON = json.JSONEncoder(separators=(",", ":"))


class SafelightGraphQL(GraphQL[Context, None]):
    def __init__(self, *args: Any, settings: Settings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.query_texts = QueryTexts()
        self.max_json_depth = settings.max_json_depth
        self.caps = ConnectionCaps(
            max_total=settings.ws_max_connections,
            max_unauthenticated=settings.ws_max_unauthenticated,
            max_per_client=settings.ws_max_per_client,
            max_unauthenticated_per_client=settings.ws_max_unauthenticated_per_client,
        )
        self.origins = (*settings.cors_origins, *((settings.public_url,) if settings.public_url else ()))
        self._refused = 0
        self._refusal_logged_at = -10.0
        # Both websocket protocols are Safelight's own (graph/ws_protocol.py); strawberry serves HTTP.
        self.websockets = WebSocketServer(
            self.schema,  # type: ignore[arg-type]
            context=lambda websocket: self.get_context(websocket, websocket),
            authenticate=self.on_ws_connect,
            decode=self.decode_json,
            init_timeout_s=settings.ws_init_timeout_s,
        )

    playground: Playground | None = None

    async def render_graphql_ide(self, request: Request) -> Response:
        """GET /graphql from a browser: the playground from the frontend build (graph/playground.py), not a CDN."""
        return await self.playground.response() if self.playground else await super().render_graphql_ide(request)

    def decode_json(self, data: str | bytes) -> object:
        """Strict JSON (graph/request_json.py): a websocket message that breaks a rule is an invalid message.
        An operation's query text is the process's one copy of it (graph/websocket.py `QueryTexts`)."""
        message = decode(data, max_depth=self.max_json_depth)
        self.query_texts.share(message)
        return message

    def parse_json(self, data: str | bytes) -> Any:
        """A request body that breaks a rule is a 400 that says which."""
        try:
            return self.decode_json(data)
        except BadRequestJson as error:
            raise GraphQLHTTPException(400, error.reason) from None

    def encode_json(self, data: object) -> str:
        """Compact JSON from one encoder."""
        return _JSON.encode(data)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        state: AppState = request.app.state.safelight
        context = Context(state=state, request=request, response=response, loaders=Loaders.create(state.sessions))
        if isinstance(request, Request):
            context.viewer_row = await request.app.state.auth.request_viewer(request)
        else:
            request.scope["safelight.contexts"].append(context)
        return context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await super().__call__(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            # Refused before the handshake completes: the client sees HTTP 403, nothing is kept.
            if (await receive())["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": 1008, "reason": refusal})
            self._log_refusal(refusal, _client(scope))
            return
        contexts: list[Context] = []
        scope["safelight.contexts"] = contexts
        admitted = scope["safelight.admitted"] = [_client(scope), False]  # [address, authenticated]
        try:
            await self.websockets.serve(WebSocket(scope, receive, send))
        finally:
            self.caps.release(admitted[0], authenticated=bool(admitted[1]))
            # The connection is gone: whatever its operations still hold is released now.
            for context in contexts:
                for listener in list(context.listeners):
                    context.release(listener)

    def _log_refusal(self, refusal: str, client: str) -> None:
        """One line per 10 s at most, however many sockets a client opens."""
        self._refused += 1
        now = time.monotonic()
        if now - self._refusal_logged_at >= 10.0:
            log.info("websocket refused: %s (%s); %d refused since the last such line", refusal, client, self._refused)
            self._refusal_logged_at, self._refused = now, 0

    def _refusal(self, scope: Scope) -> str | None:
        """Why a websocket is refused before it is accepted: a foreign Origin, or a connection cap."""
        headers = Headers(scope=scope)
        if not allowed_origin(headers.get("origin"), host=headers.get("host"), allowed=self.origins):
            return "origin not allowed"
        return self.caps.admit(_client(scope))

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        params = context.connection_params or {}
        raw = params.get("authorization") or params.get("Authorization") or params.get("token")
        raw = raw if isinstance(raw, str) else None
        token = bearer_token(raw) if raw and " " in raw else raw
        scope = context.request.scope
        viewer = await context.request.app.state.auth.viewer(token, local=_is_local(scope))
        if viewer is None:
            raise Rejected({"message": "a valid API token is required in connection_init"})
        context.viewer_row = viewer
        if token and len(token) <= MAX_TOKEN_LENGTH:
            context.token_hash = hash_token(token)
        context.connection_params = None  # read once; not kept for the connection's life
        admitted = scope.get("safelight.admitted")
        if admitted is not None and not admitted[1]:
            admitted[1] = True
            self.caps.authenticated(admitted[0])
        return None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def _is_local(scope: Scope) -> bool:
    """A loopback client: in dev mode, only such a client is the dev user without a token."""
    return _client(scope) in LOOPBACK_HOSTS


async def _stored_image(request: Request) -> tuple[AppState, Image, str] | None:
    """(state, row, template name) of the output a URL names by generation and index; None if there is none."""
    try:
        generation_id = uuid.UUID(request.path_params["generation_id"])
    except ValueError:
        return None
    index = request.path_params["index"]
    if not 0 <= index < 10_000:
        return None
    state: AppState = request.app.state.safelight
    async with state.sessions() as session:
        found = await image_with_template_at(session, generation_id=generation_id, index=index)
    return None if found is None else (state, *found)


_UNSAFE_IN_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def download_name(*, template: str, generation_id: uuid.UUID, index: int, seed: int, mime: str) -> str:
    """`<template>-<generation id[:8]>-<index>-<seed>.<ext>`, in RFC 6266's plain token characters only
    (no quoting or encoding questions for any browser); the template name is what may need replacing."""
    name = _UNSAFE_IN_FILE_NAME.sub("_", template).strip("._")[:64] or "output"
    return f"{name}-{str(generation_id)[:8]}-{index}-{seed}.{EXTENSIONS.get(mime, 'bin')}"


async def _image(request: Request) -> Response:
    """Any output with its real Content-Type (nosniff: see graph/guards.py); `?download=1` as an attachment
    with a readable file name. Range requests (seeking in a video or a sound) are FileResponse's own."""
    found = await _stored_image(request)
    if found is None:
        return PlainTextResponse("not found", status_code=404)
    state, row, template = found
    path = state.store.path_for(row.content_hash)
    if not await asyncio.to_thread(path.is_file):
        return PlainTextResponse("not found", status_code=404)
    filename = None
    if request.query_params.get("download") in ("1", "true"):
        filename = download_name(
            template=template, generation_id=row.generation_id, index=row.index, seed=row.seed, mime=row.mime
        )
    return FileResponse(path, media_type=row.mime, filename=filename, headers={"Cache-Control": _IMMUTABLE})


async def _thumbnail(request: Request) -> Response:
    if request.path_params["size"] not in THUMBNAIL_SIZES:
        return PlainTextResponse("not found", status_code=404)
    found = await _stored_image(request)
    if found is None or found[1].kind not in _THUMBNAILED:
        return PlainTextResponse("not found", status_code=404)
    state, row, _ = found
    path = await state.store.thumbnail(row.content_hash, request.path_params["size"])
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
    return Response(data, media_type=sniff_mime(data), headers={"Cache-Control": "private, max-age=300"})


async def _not_found(request: Request) -> Response:
    return PlainTextResponse("not found", status_code=404)


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _readyz(request: Request) -> Response:
    state: AppState = request.app.state.safelight
    checks: dict[str, str] = {}
    try:
        async with state.sessions() as session:
            await ping(session)
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
    """With SAFELIGHT_METRICS_TOKEN, for its bearer; without, for loopback clients only."""
    state: AppState = request.app.state.safelight
    expected = state.settings.metrics_token
    if expected is not None:
        given = bearer_token(request.headers.get("authorization")) or ""
        if not secrets.compare_digest(given.encode(), expected.get_secret_value().encode()):
            return PlainTextResponse("metrics need the metrics token", status_code=401)
    elif not _is_local(request.scope):
        return PlainTextResponse("not found", status_code=404)
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def _dev_token(request: Request) -> Response:
    """Dev mode only: hand the local user's token to the browser, so nobody copies it by hand."""
    state: AppState = request.app.state.safelight
    settings = state.settings
    # The Host of every dev-mode request is checked too (graph/guards.py DevHostGuard): DNS rebinding.
    if not settings.dev_mode or settings.dev_token is None or not _is_local(request.scope):
        return PlainTextResponse("not found", status_code=404)
    return JSONResponse({"token": settings.dev_token.get_secret_value(), "user": DEV_USER})


def _registry(state: AppState, caps: ConnectionCaps) -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge("safelight_websockets", "Open websockets in this API process", registry=registry).set_function(
        lambda: caps.total
    )
    Gauge("safelight_websockets_unauthenticated", "Websockets not yet authenticated", registry=registry).set_function(
        lambda: caps.unauthenticated
    )
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
    limits = DocumentLimits(
        max_chars=effective.graphql_max_query_chars,
        max_tokens=effective.graphql_max_tokens,
        max_aliases=effective.graphql_max_aliases,
        max_cost=effective.graphql_max_cost,
        cache_chars=effective.graphql_cache_chars,
    )
    graphql = SafelightGraphQL(
        build_schema(
            max_depth=effective.graphql_max_depth, limits=limits, introspection=effective.graphql_introspection
        ),
        graphql_ide="graphiql" if effective.graphiql else None,
        settings=effective,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with app_state(effective) as state:
            app.state.safelight = state
            app.state.auth = Auth(state, max_entries=effective.token_cache_size)
            app.state.metrics = _registry(state, graphql.caps)
            yield

    routes: list[BaseRoute] = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/images/{generation_id}/{index:int}", _image),
        Route("/thumbs/{size:int}/{generation_id}/{index:int}", _thumbnail),
        Route("/previews/{token}", _preview),
        Route("/healthz", _healthz),
        Route("/readyz", _readyz),
        Route("/metrics", _metrics),
        Route("/dev/token", _dev_token),
        *input_routes(effective),
        # Anything else under these prefixes is a missing file, never the app's index page.
        *(Route(f"/{prefix}/{{rest:path}}", _not_found) for prefix in ("images", "thumbs", "previews", "dev")),
    ]
    dist = frontend_dir or _FRONTEND_DIST
    graphql.playground = Playground(dist)
    if (dist / "index.html").is_file():
        routes.append(Mount("/", app=_SpaFiles(directory=dist, html=True)))
    # Outermost first: headers on every answer (refusals included), then the Host and body checks.
    middleware = [Middleware(SecurityHeaders)]
    if effective.dev_mode:
        hosts = [effective.host, *(h for h in (effective.public_url, *effective.cors_origins) if h)]
        middleware.append(Middleware(DevHostGuard, allowed_hosts=[_host_of(h) for h in hosts]))
    # Uploads bound their own (larger) bodies while streaming (graph/uploads.py).
    middleware.append(Middleware(BodyLimit, max_bytes=effective.max_body_bytes, exempt=(UPLOAD_PATH,)))
    if effective.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware, allow_origins=list(effective.cors_origins), allow_headers=["*"], allow_methods=["*"]
            )
        )
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware)


def _host_of(value: str) -> str:
    """A host from a URL or a bare host name."""
    return value.split("://", 1)[1].split("/", 1)[0] if "://" in value else value
