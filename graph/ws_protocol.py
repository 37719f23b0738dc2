"""GraphQL over websockets: Safelight's server of graphql-transport-ws and the legacy graphql-ws.

Both protocols, on Starlette's public `WebSocket` and graphql-core's public execution API (`Executor.build`,
`create_source_event_stream`, `execute_subscription_event`, `execute`), with the schema's own parsing,
validation, error logging and masking (graph/schema.py), as over HTTP. strawberry's protocol handlers ran
each live result through its per-operation stream pipeline (result handling, the extensions' hooks, its
message objects) and kept that pipeline, with an execution context and extension instances, for each
subscription's life: CPU per relayed event and memory per idle subscription (bench/README.md measures both).

Here a connection is read in the ASGI handler's own task; each operation is one task and holds its
operation's executor and its source stream, nothing else. An event's result is shared by the subscribers
of the same operation and variables (graph/execution.py), and so is its encoded payload: each further
subscriber costs one dictionary lookup and its message's envelope.

graphql-transport-ws (github.com/enisdenjo/graphql-ws, PROTOCOL.md): connection_init → connection_ack
(the token in its payload), ping/pong, subscribe → next…/error/complete, complete from the client;
closes 4400 (an invalid message, a document that does not parse), 4401 (subscribe before the ack),
4403 (a refused or revoked token), 4408 (no connection_init within the timeout), 4409 (an id in use),
4429 (a second connection_init). Legacy graphql-ws (subscriptions-transport-ws): connection_init →
connection_ack or connection_error, start → data…/error/complete, stop, connection_terminate; the same
init timeout (4408) and revoked-token (4403) closes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from contextlib import suppress
from inspect import isawaitable
from typing import Any

from graphql import (
    ExecutionResult,
    GraphQLError,
    GraphQLSyntaxError,
    OperationType,
    create_source_event_stream,
    execute,
    get_operation_ast,
)
from starlette.websockets import WebSocket, WebSocketState

from graph.context import Context
from graph.execution import LiveExecutor
from graph.schema import SafelightSchema, log_errors, masked
from graph.websocket import token_still_valid

__all__ = ["LEGACY_WS", "PROTOCOLS", "TRANSPORT_WS", "Connection", "Rejected", "WebSocketServer"]

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
PROTOCOLS = (TRANSPORT_WS, LEGACY_WS)

_JSON = json.JSONEncoder(separators=(",", ":"))
_MAX_REASON_BYTES = 123  # a close frame's reason (RFC 6455 §5.5)
# Encoded payloads kept by the identity of their shared result: an event's subscribers use a few operations.
_ENCODED = 64


class Rejected(Exception):
    """A connection_init whose token is refused; `payload` is the legacy protocol's connection_error."""

    def __init__(self, payload: dict[str, object]) -> None:
        super().__init__(payload.get("message"))
        self.payload = payload


class WebSocketServer:
    """What all connections of one app share: the schema, the view's context and authentication, and the
    encoded payloads of shared results."""

    def __init__(
        self,
        schema: SafelightSchema,
        *,
        context: Callable[[WebSocket], Awaitable[Context]],
        authenticate: Callable[[Context], Awaitable[object]],
        decode: Callable[[str], object],
        init_timeout_s: float,
    ) -> None:
        self.schema = schema
        self.core = schema.graphql_schema
        self.checks = schema.checks
        self.context = context
        self.authenticate = authenticate
        self.decode = decode
        self.init_timeout_s = init_timeout_s
        self._encoded: dict[int, tuple[ExecutionResult, str]] = {}

    async def serve(self, websocket: WebSocket) -> None:
        """One connection, accepted with the first protocol the client offers that is one of ours."""
        offered = websocket.scope.get("subprotocols") or ()
        protocol = next((p for p in offered if p in PROTOCOLS), None)
        await websocket.accept(subprotocol=protocol)
        if protocol is None:
            await websocket.close(4406, "Subprotocol not acceptable")
            return
        context = await self.context(websocket)
        await Connection(self, websocket, context, legacy=protocol == LEGACY_WS).serve()

    def payload(self, result: ExecutionResult) -> str:
        """A result's `payload` as JSON; an error-free result is encoded once for all who receive it (shared
        results, graph/execution.py), and kept with it so that its id is not reused meanwhile."""
        if result.errors:
            log_errors(result.errors)
            out: dict[str, Any] = {"data": result.data, "errors": [e.formatted for e in masked(result.errors)]}
            if result.extensions:
                out["extensions"] = result.extensions
            return _JSON.encode(out)
        key = id(result)
        entry = self._encoded.get(key)
        if entry is not None and entry[0] is result:
            return entry[1]
        text = _JSON.encode(
            {"data": result.data, "extensions": result.extensions} if result.extensions else {"data": result.data}
        )
        if len(self._encoded) >= _ENCODED:
            self._encoded.clear()
        self._encoded[key] = (result, text)
        return text


class Connection:
    """One websocket: its reading loop, its operations (one task each) and the protocol's rules."""

    def __init__(self, server: WebSocketServer, websocket: WebSocket, context: Context, *, legacy: bool) -> None:
        self.server = server
        self.websocket = websocket
        self.context = context
        self.legacy = legacy
        self.operations: dict[str, asyncio.Task[None]] = {}
        self.init_received = False
        self.acknowledged = False
        self.closed = False

    async def serve(self) -> None:
        try:
            await self._read()
        finally:
            self.closed = True  # nothing more is sent; the operations end quietly
            tasks = list(self.operations.values())
            self.operations.clear()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with suppress(BaseException):
                    await task

    async def _read(self) -> None:
        websocket = self.websocket
        deadline = asyncio.get_running_loop().time() + self.server.init_timeout_s
        while not self.closed:
            if self.init_received:
                message = await websocket.receive()
            else:
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await websocket.receive()
                except TimeoutError:
                    await self.close(4408, "Connection initialisation timeout")
                    return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await self.close(1002 if self.legacy else 4400, "WebSocket message type must be text")
                return
            try:
                decoded = self.server.decode(text)
            except ValueError:  # not JSON, or JSON that breaks a rule of graph/payloads.py
                if not self.legacy:
                    await self.close(4400, "WebSocket message must be valid JSON")
                    return
                continue  # the legacy protocol ignores what it cannot read
            if self.legacy:
                await self._legacy_message(decoded)
            else:
                await self._transport_message(decoded)

    async def _transport_message(self, message: object) -> None:
        if not isinstance(message, dict) or not isinstance(kind := message.get("type"), str):
            await self.close(4400, "Failed to parse message")
            return
        if kind == "subscribe":
            start = await self._accepted_start(message)
            if start is not None and start[0] in self.operations:
                await self.close(4409, f"Subscriber for {start[0]} already exists")
            elif start is not None:
                self._start(*start)
        elif kind == "complete":
            operation_id = message.get("id")
            task = self.operations.pop(operation_id, None) if isinstance(operation_id, str) else None
            if task is not None:
                task.cancel()  # not awaited: reading goes on while the operation ends
        elif kind == "ping":
            await self.send('{"type":"pong"}')
        elif kind == "pong":
            pass
        elif kind == "connection_init":
            payload = message.get("payload")
            if payload is not None and not isinstance(payload, dict):
                await self.close(4400, "Invalid connection init payload")
            elif self.init_received:
                await self.close(4429, "Too many initialisation requests")
            else:
                self.init_received = True
                if await self._authenticated(payload):
                    await self.send('{"type":"connection_ack"}')
                    self.acknowledged = True
                else:
                    await self.close(4403, "Forbidden")
        else:
            await self.close(4400, f"Unknown message type: {kind[:64]}")

    async def _accepted_start(
        self, message: dict[str, Any]
    ) -> tuple[str, str, dict[str, Any] | None, str | None] | None:
        """The parts of an operation-starting message (either protocol), or None once the socket is closed
        for it: unreadable (4400), its token revoked or expired since (4403), before the init's ack (4401)."""
        start = _start(message)
        if start is None:
            await self.close(4400, "Failed to parse message")
        elif not await token_still_valid(self.context):
            await self.close(4403, "Forbidden")
        elif not self.acknowledged:
            await self.close(4401, "Unauthorized")
        else:
            return start
        return None

    async def _legacy_message(self, message: object) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        if not isinstance(message, dict) or kind is None:
            return  # the legacy protocol ignores what it cannot read
        if kind == "start":
            start = await self._accepted_start(message)
            if start is not None:
                await self._stop(start[0])  # an id in use: the old operation ends (complete) first
                self._start(*start)
        elif kind == "stop":
            operation_id = message.get("id")
            if isinstance(operation_id, str):
                await self._stop(operation_id)
        elif kind == "connection_init":
            payload = message.get("payload")
            self.init_received = True
            if payload is not None and not isinstance(payload, dict):
                await self.send('{"type":"connection_error"}')
                await self.close(1000, "")
                return
            try:
                await self._authenticate(payload)
            except Rejected as rejected:
                await self.send(_JSON.encode({"type": "connection_error", "payload": rejected.payload}))
                await self.close(1011, "")
                return
            await self.send('{"type":"connection_ack"}')
            self.acknowledged = True
        elif kind == "connection_terminate":
            await self.close(1000, "")

    async def _authenticate(self, payload: dict[str, Any] | None) -> None:
        self.context.connection_params = payload or {}
        await self.server.authenticate(self.context)

    async def _authenticated(self, payload: dict[str, Any] | None) -> bool:
        try:
            await self._authenticate(payload)
        except Rejected:
            return False
        return True

    def _start(self, operation_id: str, query: str, variables: dict[str, Any] | None, name: str | None) -> None:
        self.operations[operation_id] = asyncio.create_task(self.run_operation(operation_id, query, variables, name))

    async def _stop(self, operation_id: str) -> None:
        """The legacy protocol's `stop` (or a `start` with an id in use): the operation ends, then `complete`
        says so; an operation that has already ended sent its own."""
        task = self.operations.pop(operation_id, None)
        if task is not None:
            task.cancel()
            with suppress(BaseException):
                await task
            await self.send(f'{{"type":"complete","id":{_JSON.encode(operation_id)}}}')

    async def run_operation(
        self, operation_id: str, query: str, variables: dict[str, Any] | None, name: str | None
    ) -> None:
        """The operation's task: its results, then `complete`; removed from the connection when it ends."""
        envelope = _JSON.encode(operation_id)
        try:
            if await self._execute(operation_id, envelope, query, variables, name):
                self._forget(operation_id)  # its id may be used again as soon as the client reads this
                await self.send(f'{{"id":{envelope},"type":"complete"}}')
        except Exception as error:  # a failure of ours: logged with an id; the client hears it masked
            failure = GraphQLError(str(error), original_error=error)
            log_errors([failure])
            shown = _JSON.encode([e.formatted for e in masked([failure])])
            self._forget(operation_id)
            await self.send(f'{{"id":{envelope},"type":"error","payload":{shown[1:-1] if self.legacy else shown}}}')
        finally:
            if self.operations.get(operation_id) is asyncio.current_task():
                del self.operations[operation_id]

    async def _execute(
        self, operation_id: str, envelope: str, query: str, variables: dict[str, Any] | None, name: str | None
    ) -> bool:
        """Send the operation's results; False if it ended otherwise (refused, or the socket closed)."""
        server = self.server
        try:
            document = await server.checks.parse_async(query)
        except GraphQLError as error:
            if isinstance(error, GraphQLSyntaxError) and not self.legacy:
                await self.close(4400, error.message)  # graphql-transport-ws: a syntax error closes the socket
                return False
            return await self._refuse(operation_id, envelope, [error])
        del query  # the document cache keeps the text; the operation does not need its own copy
        operation = get_operation_ast(document, name)
        if operation is None:
            reason = "Can't get GraphQL operation type" if name is None else f'Unknown operation named "{name}".'
            if not self.legacy:
                await self.close(4400, reason)
                return False
            return await self._refuse(operation_id, envelope, [GraphQLError(reason)])
        errors = server.checks.validate(server.core, document)
        if errors:
            return await self._refuse(operation_id, envelope, errors)
        if operation.operation is not OperationType.SUBSCRIPTION:
            result = execute(
                server.core, document, None, self.context, variables, name, executor_class=LiveExecutor
            )  # fmt: skip
            if isawaitable(result):
                result = await result
            return await self._next(envelope, result)
        executor = LiveExecutor.build(server.core, document, None, self.context, variables, name)
        if isinstance(executor, list):
            return await self._refuse(operation_id, envelope, executor)
        source = create_source_event_stream(executor)
        if isawaitable(source):
            source = await source
        if isinstance(source, ExecutionResult):
            return await self._refuse(operation_id, envelope, source.errors or [])
        return await self._events(envelope, executor, source)

    async def _events(self, envelope: str, executor: LiveExecutor, source: Any) -> bool:
        """Each event of the source stream, executed (or its shared result), sent as it comes."""
        try:
            async for event in source:
                result = executor.event_result(event)
                if isawaitable(result):
                    result = await result
                if not await self._next(envelope, result):
                    return False
        except Exception as error:  # the stream failed: its last result says why, as strawberry's did
            failure = error if isinstance(error, GraphQLError) else GraphQLError(str(error), original_error=error)
            return await self._next(envelope, ExecutionResult(None, [failure]))
        finally:
            close = getattr(source, "aclose", None)
            if close is not None:
                with suppress(Exception):
                    await close()
        return True

    async def _next(self, envelope: str, result: ExecutionResult) -> bool:
        kind = '"data"' if self.legacy else '"next"'
        return await self.send(f'{{"id":{envelope},"type":{kind},"payload":{self.server.payload(result)}}}')

    async def _refuse(self, operation_id: str, envelope: str, errors: list[GraphQLError]) -> bool:
        """Errors before execution: one `error` message ends the operation (logged and masked as over HTTP)."""
        log_errors(errors)
        shown = [e.formatted for e in masked(errors)]
        payload = _JSON.encode(shown[0] if self.legacy else shown) if shown else "[]"
        self._forget(operation_id)
        await self.send(f'{{"id":{envelope},"type":"error","payload":{payload}}}')
        return False

    def _forget(self, operation_id: str) -> None:
        if self.operations.get(operation_id) is asyncio.current_task():
            del self.operations[operation_id]

    async def send(self, text: str) -> bool:
        """Send one message; False once the socket is closed or gone."""
        if self.closed:
            return False
        try:
            await self.websocket.send_text(text)
        except Exception:  # the client went away: the reading loop ends the connection
            self.closed = self.websocket.application_state is WebSocketState.DISCONNECTED or self.closed
            return False
        return True

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        with suppress(Exception):  # already closing: nothing more to do
            await self.websocket.close(code, reason.encode()[:_MAX_REASON_BYTES].decode(errors="ignore"))


def _start(message: dict[str, Any]) -> tuple[str, str, dict[str, Any] | None, str | None] | None:
    """(id, query, variables, operation name) of a subscribe/start message, or None if it is not one."""
    operation_id, payload = message.get("id"), message.get("payload")
    if not isinstance(operation_id, str) or not isinstance(payload, dict):
        return None
    query, variables, name = payload.get("query"), payload.get("variables"), payload.get("operationName")
    if not isinstance(query, str) or not isinstance(variables, dict | None) or not isinstance(name, str | None):
        return None
    return operation_id, query, variables, name
