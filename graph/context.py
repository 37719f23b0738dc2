"""The per-request GraphQL context: shared state, the viewer, and fresh DataLoaders."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from db import models
from graph.fanout import Listener
from graph.loaders import Loaders
from graph.state import AppState

__all__ = ["BadRequest", "Context", "NotAuthenticated"]


class BadRequest(Exception):
    """A malformed argument (e.g. a cursor we did not issue); the message is shown to the client."""


class NotAuthenticated(Exception):
    """No valid bearer token; the client should send `Authorization: Bearer <token>`."""


@dataclass
class Context:
    state: AppState
    request: Request | WebSocket
    response: Response | WebSocket | None
    loaders: Loaders
    viewer_row: models.User | None = None
    # A websocket's token, by its hash: each new operation checks it is still valid (revoked, expired).
    token_hash: str | None = None
    connection_params: dict[str, Any] | None = field(default=None)
    # Listeners opened by this websocket connection's subscriptions; all are closed when the
    # connection ends, even if an operation's generator is never finalised.
    listeners: set[Listener] = field(default_factory=set)

    def listen(self, key: uuid.UUID | None, *, quiet_after_s: float | None = None) -> Listener:
        listener = self.state.hub.listen(key, quiet_after_s=quiet_after_s)
        self.listeners.add(listener)
        return listener

    def release(self, listener: Listener) -> None:
        listener.close()
        self.listeners.discard(listener)

    @property
    def viewer(self) -> models.User:
        if self.viewer_row is None:
            raise NotAuthenticated("authentication required: send a bearer API token")
        return self.viewer_row

    @cached_property
    def base_url(self) -> str:
        """Absolute base for URLs: PUBLIC_URL when configured, else the URL this request came to."""
        configured = self.state.settings.public_url
        if configured:
            return configured.rstrip("/")
        url = self.request.base_url
        scheme = {"ws": "http", "wss": "https"}.get(url.scheme, url.scheme)
        return f"{scheme}://{url.netloc}"
