"""`safelight api`: serve the ASGI app with uvicorn."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import uvicorn

from graph.app import create_app
from jobs.logs import configure_logging
from settings import Settings

__all__ = ["serve_api", "uvicorn_options"]


def uvicorn_options(settings: Settings, *, host: str | None = None, port: int | None = None) -> dict[str, Any]:
    """uvicorn's settings: its lines go through our handler (jobs/logs.py); the access log only on request."""
    return {
        "host": host or settings.host,
        "port": port or settings.port,
        "log_level": settings.log_level.lower(),
        "log_config": None,
        "access_log": settings.access_log or settings.log_level == "DEBUG",
        "ws": "websockets-sansio",
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 20.0,
        "ws_max_size": settings.ws_max_message_bytes,
        "lifespan": "on",
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
    }


def serve_api(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    before_serving: Callable[[], None] | None = None,
) -> None:
    """Serve until stopped; `before_serving` runs once the app (and its schema) is built."""
    configure_logging(settings.log_level, json_lines=settings.log_json)
    app = create_app(settings)
    if before_serving is not None:
        before_serving()
    uvicorn.run(app, **uvicorn_options(settings, host=host, port=port))
