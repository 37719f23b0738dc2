"""GraphQL over websockets: strawberry's two protocol handlers, with subscriptions run lean.

An idle subscription on strawberry's own path keeps its whole per-operation pipeline open for its
life: an execution context, an instance of every schema extension, and the extension runner's exit
stacks and hook context managers (5.2 KB of the 39.3 KB of Python heap each idle subscription held,
by tracemalloc over 1,000 of them). On graphql-transport-ws (the frontend's and the generated clients'
protocol), a valid subscription therefore runs here, on graphql-core directly: the schema's own parse
and validation caches decide what is valid, and errors are reported and masked as strawberry would
(`SafelightSchema.report`). Anything else (queries and mutations over the socket, a document that does
not parse or validate) takes strawberry's path, as does every operation on the legacy graphql-ws.

On both protocols, an operation's live results without errors are written by a `LiveSender`
(graph/execution.py, `SEND_RESULT`).
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing, suppress
from typing import TYPE_CHECKING, Any

from graphql import ExecutionResult, GraphQLError, GraphQLSyntaxError
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler, Operation
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import StartMessage
from strawberry.types.execution import ExecutionResult as StrawberryResult

from graph.context import Context
from graph.execution import SEND_RESULT, subscribe

if TYPE_CHECKING:
    from graph.schema import SafelightSchema

__all__ = ["LegacyWSHandler", "QueryTexts", "TransportWSHandler"]

_QUERY_TEXTS = 512  # distinct subscription documents whose text is shared (see QueryTexts)


class QueryTexts:
    """One string per distinct query text among the operations a process holds.

    Each subscription keeps its query text for its whole life; 10,000 subscribers of one page's query
    then hold one copy, not 10,000 (bench/subscriptions.py, KB per idle subscription).
    """

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}

    def share(self, payload: object) -> None:
        if isinstance(payload, dict) and isinstance(query := payload.get("query"), str):
            if len(self._texts) >= _QUERY_TEXTS and query not in self._texts:
                self._texts.clear()
            payload["query"] = self._texts.setdefault(query, query)


class LiveSender:
    """Writes one operation's live results to its websocket (`graph.execution.SEND_RESULT`)."""

    __slots__ = ("_id", "_kind", "_operation", "_view", "_websocket")

    def __init__(self, handler: Any, kind: str, operation_id: str, operation: Operation[Context, None] | None) -> None:
        self._view = handler.view  # SafelightGraphQL: its `frame` encodes a shared payload once
        self._websocket: WebSocket = handler.websocket.ws  # strawberry's adapter keeps Starlette's WebSocket
        self._kind = kind
        self._id = operation_id
        self._operation = operation

    async def send(self, result: ExecutionResult) -> bool:
        if self._operation is not None and self._operation.completed:
            return False  # as strawberry's Operation.send_operation_message: nothing after complete
        try:
            await self._websocket.send_text(self._view.frame(self._kind, self._id, result.data))
        except (WebSocketDisconnect, RuntimeError, OSError):
            return False  # the connection is gone; its handler is closing the operations
        return True


async def token_still_valid(context: Context) -> bool:
    """A revoked or expired token ends its sockets at their next operation (graph/auth.py)."""
    if context.token_hash is None:
        return True  # dev mode's token-less local user, or not yet authenticated
    return await context.request.app.state.auth.viewer_by_hash(context.token_hash) is not None


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if not await token_still_valid(self.context):
            await self.websocket.close(code=4403, reason="Forbidden")
            return
        self.view.query_texts.share(message.get("payload"))  # type: ignore[attr-defined]
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        """Run a valid subscription on graphql-core directly; anything else as strawberry does."""
        # This task runs one operation: its live results go straight to the socket (graph/execution.py).
        SEND_RESULT.set(LiveSender(self, "next", operation.id, operation))
        schema: SafelightSchema = self.schema  # type: ignore[assignment]
        refused = await schema.parse(operation.query)
        if refused is not None:  # as strawberry answers a pre-execution error
            if isinstance(refused, GraphQLSyntaxError):
                await self.websocket.close(code=4400, reason=_close_reason(refused.message))
                self.operations.pop(operation.id, None)
                return
            await operation.send_initial_errors(schema.report([refused]))
            return
        document = schema.subscription_document(operation.query, operation.operation_name)
        if document is None:
            await super().run_operation(operation)
            return
        try:
            await self._stream(operation, schema, document)
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except Exception as error:  # as strawberry's run_operation
            await self.handle_task_exception(error)
            with suppress(Exception):  # the connection may be gone: nothing more to say
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise

    async def _stream(self, operation: Operation[Context, None], schema: SafelightSchema, document: Any) -> None:
        # What strawberry's Schema._stream and _send_result_stream do for a subscription, without
        # the extension lifecycle (our extensions only parse, validate and mask, done by the schema).
        try:
            source = await subscribe(
                schema._schema, document, self.root_value, self.context, operation.variables, operation.operation_name
            )
        except Exception as error:  # graphql-core 3.2 raises some pre-execution errors
            source = ExecutionResult(None, [_graphql_error(error)])
        if isinstance(source, ExecutionResult):  # refused before the first event
            await operation.send_initial_errors(schema.report(source.errors or []))
            return
        async with aclosing(source):
            while True:
                try:
                    result = await anext(source)
                except StopAsyncIteration:
                    return
                except Exception as error:  # an event's failure ends the stream with its error
                    failed = schema.report([_graphql_error(error)])
                    await operation.send_next(StrawberryResult(data=None, errors=failed))
                    return
                # A failure to send is the connection's, not the operation's: it goes to run_operation.
                errors = schema.report(result.errors) if result.errors else None
                await operation.send_next(StrawberryResult(data=result.data, errors=errors))


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    async def handle(self) -> None:
        """strawberry's, plus what graphql-transport-ws has and graphql-ws lacks: a socket that has not
        sent an accepted `connection_init` within the init timeout is closed (4408)."""
        timeout = asyncio.create_task(self._close_unless_acknowledged())
        try:
            await super().handle()
        finally:
            timeout.cancel()
            with suppress(asyncio.CancelledError):
                await timeout

    async def _close_unless_acknowledged(self) -> None:
        await asyncio.sleep(self.view.connection_init_wait_timeout.total_seconds())
        if not self.connection_acknowledged:
            with suppress(Exception):  # already closing: nothing more to do
                await self.websocket.close(code=4408, reason="Connection initialisation timeout")

    async def handle_start(self, message: StartMessage) -> None:
        if not await token_still_valid(self.context):
            await self.websocket.close(code=4403, reason="Forbidden")
            return
        self.view.query_texts.share(message.get("payload"))  # type: ignore[attr-defined]
        await super().handle_start(message)

    async def handle_async_results(
        self, operation_id: str, query: str, operation_name: str | None, variables: dict[str, object] | None
    ) -> None:
        SEND_RESULT.set(LiveSender(self, "data", operation_id, None))
        schema: SafelightSchema = self.schema  # type: ignore[assignment]
        error = await schema.parse(query)
        if error is not None:  # as strawberry answers a pre-execution error
            try:
                await self.send_message(
                    {"type": "error", "id": operation_id, "payload": schema.report([error])[0].formatted}
                )
            finally:
                self.tasks.pop(operation_id, None)
            return
        await super().handle_async_results(operation_id, query, operation_name, variables)


def _close_reason(message: str) -> str:
    """A websocket close reason fits in 123 bytes of UTF-8."""
    return message.encode()[:120].decode(errors="ignore")


def _graphql_error(error: Exception) -> GraphQLError:
    return error if isinstance(error, GraphQLError) else GraphQLError(str(error), original_error=error)
