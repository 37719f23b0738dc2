"""Entry points: build the ASGI app, run it in the current event loop for tests, or serve it for the CLI.

    async with running_fake(FakeConfig(step_time=0.01)) as comfy:
        httpx.post(f"{comfy.url}/prompt", json={...})

Several instances can run side by side; each app owns its `FakeComfy` state (`app.state.fake`). The fake
is served by its own small HTTP/websocket server (`comfy.fake.asgi`), which costs it far less CPU per
request and per frame than uvicorn; `serve_in_loop` (uvicorn) serves other ASGI apps, such as the API in
tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, WebSocketRoute
from starlette.types import ASGIApp

from comfy.fake import asgi
from comfy.fake.config import Dialect, FakeConfig
from comfy.fake.control import CONTROL_ROUTES
from comfy.fake.routes import ROUTES
from comfy.fake.state import FakeComfy
from comfy.fake.uploads import UPLOAD_ROUTES
from comfy.fake.websocket import websocket_endpoint

__all__ = ["FakeComfy", "FakeConfig", "FakeHandle", "create_app", "running_fake", "serve_fake", "serve_in_loop"]

_WS_IMPLEMENTATION = "websockets-sansio"


def create_app(config: FakeConfig | None = None) -> Starlette:
    """A fake ComfyUI app; its worker starts and its output files go away with the ASGI lifespan."""
    fake = FakeComfy(config if config is not None else FakeConfig())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await fake.start()
        try:
            yield
        finally:
            await fake.close()

    comfy_routes: list[BaseRoute] = [*ROUTES, *UPLOAD_ROUTES, WebSocketRoute("/ws", websocket_endpoint)]
    app = Starlette(
        routes=[*comfy_routes, Mount("/api", routes=comfy_routes), *CONTROL_ROUTES],
        lifespan=lifespan,
    )
    app.state.fake = fake
    return app


@dataclass(frozen=True)
class FakeHandle:
    url: str
    """`http://HOST:PORT`, no trailing slash."""
    fake: FakeComfy
    config: FakeConfig
    """The live config: changing a field changes the running fake's behaviour."""

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http") + "/ws"


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Running inside someone else's event loop (tests, dev stack): signals belong to the host.
        yield


@asynccontextmanager
async def serve_in_loop(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve any ASGI app on a real socket in the current event loop; yields `http://HOST:PORT`.

    Port 0 picks a free port. The fake uses it, and so do the tests for the API.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = _EmbeddedServer(
        uvicorn.Config(app, log_level="warning", ws=_WS_IMPLEMENTATION, lifespan="on", timeout_graceful_shutdown=5)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]), name="in-loop-uvicorn")
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("server did not start")
            await asyncio.sleep(0.005)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def running_fake(
    config: FakeConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[FakeHandle]:
    """Serve a fake ComfyUI on a real socket in the current event loop (port 0 picks a free port), with the
    fake's own small server (`comfy.fake.asgi`), as `serve_fake` does."""
    app = create_app(config)
    async with asgi.serving(app, host=host, port=port) as (bound_host, bound_port):
        fake: FakeComfy = app.state.fake
        yield FakeHandle(url=f"http://{bound_host}:{bound_port}", fake=fake, config=fake.config)


def serve_fake(*, host: str, port: int, step_time: float | None, preview: bool, dialect: Dialect = "upstream") -> None:
    """Serve until interrupted (the CLI's `safelight fake-comfy`)."""
    config = FakeConfig(preview=preview, dialect=dialect)
    if step_time is not None:
        config.step_time = step_time
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asgi.run(create_app(config), host=host, port=port)
