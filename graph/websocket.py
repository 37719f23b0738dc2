"""GraphQL over websockets: what Safelight adds around strawberry's two protocol handlers.

strawberry runs both protocols (graphql-transport-ws and the legacy graphql-ws) itself. Around them, at
the ASGI boundary of one connection (`guard_connection`, called by the view in graph/app.py):
- a socket whose token was revoked or has expired takes no new operation: the message that would start
  one closes the socket (4403) instead;
- a legacy graphql-ws socket that has not been acknowledged (an accepted `connection_init`) within the
  init timeout is closed (4408), as graphql-transport-ws does by itself;
and `QueryTexts` keeps one string per distinct query text among the operations a process holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from starlette.types import Message, Receive, Scope, Send
from strawberry.subscriptions import GRAPHQL_WS_PROTOCOL

from graph.context import Context

__all__ = ["QueryTexts", "guard_connection", "token_still_valid"]

_QUERY_TEXTS = 512  # distinct subscription documents whose text is shared (see QueryTexts)

# The message types that start an operation: graphql-transport-ws `subscribe`, graphql-ws `start`.
STARTS = ("subscribe", "start")


class QueryTexts:
    """One string per distinct query text among the operations a process holds.

    Each subscription keeps its query text for its whole life; 10,000 subscribers of one page's query
    then hold one copy, not 10,000 (bench/subscriptions.py, KB per idle subscription).
    """

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}

    def share(self, message: object) -> None:
        """Replace the query text of an operation-starting message by the process's copy of it."""
        if not isinstance(message, dict) or message.get("type") not in STARTS:
            return
        payload = message.get("payload")
        if isinstance(payload, dict) and isinstance(query := payload.get("query"), str):
            if len(self._texts) >= _QUERY_TEXTS and query not in self._texts:
                self._texts.clear()
            payload["query"] = self._texts.setdefault(query, query)


async def token_still_valid(context: Context) -> bool:
    """A revoked or expired token ends its sockets at their next operation (graph/auth.py)."""
    if context.token_hash is None:
        return True  # dev mode's token-less local user, or not yet authenticated
    return await context.request.app.state.auth.viewer_by_hash(context.token_hash) is not None


async def guard_connection(
    handler: Callable[[Scope, Receive, Send], Awaitable[None]],
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    contexts: list[Context],
    decode: Callable[[str], object],
    init_timeout_s: float,
) -> None:
    """Run `handler` (strawberry's view) on one websocket, with the checks above."""
    guard = _Guard(receive, send, contexts=contexts, decode=decode, init_timeout_s=init_timeout_s)
    try:
        await handler(scope, guard.receive, guard.send)
    finally:
        await guard.stop()


class _Guard:
    def __init__(
        self,
        receive: Receive,
        send: Send,
        *,
        contexts: list[Context],
        decode: Callable[[str], object],
        init_timeout_s: float,
    ) -> None:
        self._receive = receive
        self._send = send
        self._contexts = contexts
        self._decode = decode
        self._init_timeout_s = init_timeout_s
        self._acknowledged = False
        self._closed = False
        self._timeout: asyncio.Task[None] | None = None

    async def receive(self) -> Message:
        message = await self._receive()
        text = message.get("text") if message["type"] == "websocket.receive" else None
        if (
            text
            and not self._closed
            and ('"subscribe"' in text or '"start"' in text)
            and self._contexts
            and _starts_operation(text, self._decode)
            and not await token_still_valid(self._contexts[0])
        ):
            await self._close(4403, "Forbidden")
            return {"type": "websocket.disconnect", "code": 4403}
        return message

    async def send(self, message: Message) -> None:
        if self._closed:
            return  # closed by this guard: strawberry's handler is ending
        kind = message["type"]
        if kind == "websocket.accept" and message.get("subprotocol") == GRAPHQL_WS_PROTOCOL:
            self._timeout = asyncio.create_task(self._close_unless_acknowledged())
        elif kind == "websocket.send" and not self._acknowledged and '"connection_ack"' in (message.get("text") or ""):
            self._acknowledged = True
        elif kind == "websocket.close":
            self._closed = True
        await self._send(message)

    async def _close_unless_acknowledged(self) -> None:
        await asyncio.sleep(self._init_timeout_s)
        if not self._acknowledged:
            await self._close(4408, "Connection initialisation timeout")

    async def _close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        with suppress(Exception):  # already closing: nothing more to do
            await self._send({"type": "websocket.close", "code": code, "reason": reason})

    async def stop(self) -> None:
        if self._timeout is not None:
            self._timeout.cancel()
            with suppress(asyncio.CancelledError):
                await self._timeout


def _starts_operation(text: str, decode: Callable[[str], object]) -> bool:
    try:
        message: Any = decode(text)
    except Exception:  # strawberry refuses a message that does not decode (4400)
        return False
    return isinstance(message, dict) and message.get("type") in STARTS
