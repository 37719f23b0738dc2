"""Subscription execution: one GraphQL execution per distinct (event, document, variables), no tasks per event.

Two costs dominated an API process holding many subscriptions (bench/subscriptions.py):
- graphql-core 3.2 maps a subscription's source stream with `MapAsyncIterator`, which wraps every
  `__anext__` in two tasks and an `asyncio.wait`, and keeps two pending tasks per idle subscription.
  graphql-core 3.3 dropped it, but gql and ariadne-codegen pin us to 3.2. `subscribe` below maps the
  stream with a plain async generator instead: same results, same closing, no tasks.
- every subscriber executed the selection set on every event itself, although the live events of a
  generation are the same objects for all of them (`graph.subscriptions.to_event` builds one per bus
  event and base URL). A root marked with `share_results` keeps the result of each distinct
  (document, operation, variables) it was executed with, and every other subscriber with the same
  operation receives that result. Results with errors are never shared: each subscriber gets its own
  execution, so error masking and logging stay per operation.

- every later result then climbed back up through strawberry's stream (`_handle_execution_result`,
  the extensions' `on_stream_result`, `send_next`, `send_json`) to be written. A result without errors
  after the first needs none of that: where the websocket handler that runs the operation has set
  `SEND_RESULT` (graph/websocket.py), it is sent from here. Results with errors, and the first result (which
  strawberry checks for pre-execution errors), still go through strawberry.

`install()` points strawberry at this `subscribe`; strawberry offers no hook for it, so the name it
looks up is replaced, once, when the schema is built (`graph.schema.build_schema`).
`tests/graph/test_execution.py` fails if strawberry stops looking the name up there.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncGenerator, AsyncIterable
from contextvars import ContextVar
from inspect import isawaitable
from typing import Any, Protocol, TypeVar

import strawberry.schema.schema as strawberry_schema
from graphql import (
    DocumentNode,
    ExecutionContext,
    ExecutionResult,
    FieldNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLFieldResolver,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    Undefined,
    execute,
    is_non_null_type,
)
from graphql.execution.execute import CollectedErrors, get_field_def
from graphql.execution.subscribe import create_source_event_stream
from graphql.pyutils import AwaitableOrValue, Path

__all__ = ["SEND_RESULT", "ResultSender", "install", "share_results", "subscribe"]

_SHARED = "_safelight_shared_results"


class ResultSender(Protocol):
    async def send(self, result: ExecutionResult) -> bool:
        """Send a result without errors straight to the client; False once it cannot (connection gone)."""


# The sender of the operation this task runs, set by the websocket handlers (graph/websocket.py); unset
# elsewhere (HTTP, tests that call `subscribe` themselves). False from it ends the subscription.
SEND_RESULT: ContextVar[ResultSender | None] = ContextVar("safelight_send_result", default=None)

T = TypeVar("T")


def share_results(root: T) -> T:
    """Mark `root` (an object yielded to many subscribers) so that equal operations share one result."""
    setattr(root, _SHARED, {})
    return root


async def subscribe(
    schema: GraphQLSchema,
    document: DocumentNode,
    root_value: Any = None,
    context_value: Any = None,
    variable_values: dict[str, Any] | None = None,
    operation_name: str | None = None,
    field_resolver: GraphQLFieldResolver | None = None,
    subscribe_field_resolver: GraphQLFieldResolver | None = None,
    **_: Any,
) -> AsyncGenerator[ExecutionResult, None] | ExecutionResult:
    """graphql-core's `subscribe`, mapping the source stream without tasks and sharing marked results."""
    source = await create_source_event_stream(
        schema, document, root_value, context_value, variable_values, operation_name, subscribe_field_resolver
    )
    if isinstance(source, ExecutionResult):
        return source
    return _responses(source, schema, document, context_value, variable_values, operation_name, field_resolver)


async def _responses(
    source: AsyncIterable[Any],
    schema: GraphQLSchema,
    document: DocumentNode,
    context_value: Any,
    variable_values: dict[str, Any] | None,
    operation_name: str | None,
    field_resolver: GraphQLFieldResolver | None,
) -> AsyncGenerator[ExecutionResult, None]:
    # The key of this operation among others executed against the same root: the parsed document is
    # one object per query text (strawberry's ParserCache), so its identity names the query; it is
    # kept in the entry so the id cannot be reused while the root lives.
    key = (id(document), operation_name, _variables_key(variable_values))
    sender = SEND_RESULT.get()
    first = True
    iterator = source.__aiter__()
    try:
        while True:
            try:
                payload = await iterator.__anext__()
            except StopAsyncIteration:
                return
            shared: dict[Any, tuple[DocumentNode, ExecutionResult]] | None = getattr(payload, _SHARED, None)
            entry = shared.get(key) if shared is not None and key[2] is not None else None
            if entry is not None and entry[0] is document:
                result = entry[1]
            else:
                executed = _execute(
                    schema, document, payload, context_value, variable_values, operation_name, field_resolver,
                    variables_key=key[2],
                )  # fmt: skip
                result = await executed if isawaitable(executed) else executed
                del executed
                if shared is not None and key[2] is not None and not result.errors:
                    shared[key] = (document, result)
            del payload, shared, entry  # no local keeps an event or a result while the subscription waits
            if sender is not None and not first and not result.errors:
                delivered = await sender.send(result)
                del result
                if not delivered:
                    return
                continue
            first = False
            yield result
            del result
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


# Execution contexts built without a root value or context, by (document id, operation, variables); a
# bounded process-wide cache, entries keep their document so an id cannot be reused while they live.
_TEMPLATES: dict[tuple[int, str | None, str], tuple[DocumentNode, ExecutionContext]] = {}
_TEMPLATE_LIMIT = 1024

# Per field definition (by id, kept with it): its leaf type and whether it is non-null, or None if the
# field's type is not a leaf. Field definitions live as long as their schema; bounded like _TEMPLATES
# for processes (tests) that build many schemas.
_LEAVES: dict[int, tuple[GraphQLField, GraphQLLeafType | None, bool]] = {}


class _LiveExecution(ExecutionContext):
    """graphql-core's execution, with strawberry's plain attribute fields read without a resolver call.

    A live event's fields are nearly all plain attributes (`seq`, `kind`, `progress { step }`) or
    null (`error`, `image` on a PROGRESS event). graphql-core builds a `GraphQLResolveInfo`, reads the
    arguments and calls strawberry's basic resolver (marked `_is_default`), which ignores both, for each
    of them. Here such a field is read directly when its value is null and nullable, or serializes as
    a leaf; everything else, and any value that would be an error, goes through graphql-core's own
    `execute_field`, so results and errors are the same (tests/graph/test_execution.py compares them).
    """

    def execute_field(
        self, parent_type: GraphQLObjectType, source: Any, field_nodes: list[FieldNode], path: Path
    ) -> AwaitableOrValue[Any]:
        field_def = get_field_def(self.schema, parent_type, field_nodes[0])
        resolve = field_def.resolve if field_def is not None else None
        if resolve is None or not getattr(resolve, "_is_default", False) or self.middleware_manager is not None:
            return super().execute_field(parent_type, source, field_nodes, path)
        assert field_def is not None
        entry = _LEAVES.get(id(field_def))
        if entry is None or entry[0] is not field_def:
            field_type, non_null = field_def.type, is_non_null_type(field_def.type)
            named = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
            leaf_type = named if isinstance(named, GraphQLScalarType | GraphQLEnumType) else None
            if len(_LEAVES) >= _TEMPLATE_LIMIT:
                _LEAVES.clear()
            entry = _LEAVES[id(field_def)] = (field_def, leaf_type, non_null)
        _, leaf, non_null = entry
        try:
            value = resolve(source, None)  # strawberry's basic resolver: the attribute
        except Exception:  # graphql-core reads it again and reports the error its own way
            return super().execute_field(parent_type, source, field_nodes, path)
        if value is None and not non_null:
            return None
        if leaf is not None and value is not None and not self.is_awaitable(value):
            try:
                serialized = leaf.serialize(value)
            except Exception:  # as above: graphql-core's error, from graphql-core
                return super().execute_field(parent_type, source, field_nodes, path)
            if serialized is not None and serialized is not Undefined:
                return serialized
        return super().execute_field(parent_type, source, field_nodes, path)


def _execute(
    schema: GraphQLSchema,
    document: DocumentNode,
    root: Any,
    context_value: Any,
    variable_values: dict[str, Any] | None,
    operation_name: str | None,
    field_resolver: GraphQLFieldResolver | None,
    *,
    variables_key: str | None = None,
) -> AwaitableOrValue[ExecutionResult]:
    """graphql-core's `execute` for one event, without rebuilding what depends only on the operation.

    `execute()` builds an ExecutionContext on every call: it finds the operation, collects fragments and
    coerces the variables (`type_from_ast` for each definition), 18 % of the API's CPU relaying 2,000
    events/s to one subscriber. That context is built once per (document, operation, variables) and
    copied per event with this event's root value, this subscriber's context and fresh errors; the
    copies share its cache of collected sub-selections. Relies on graphql-core 3.2.14's ExecutionContext
    (pinned in pyproject.toml).
    """
    variables = variables_key if variables_key is not None else _variables_key(variable_values)
    if variables is None or field_resolver is not None:
        return execute(schema, document, root, context_value, variable_values, operation_name, field_resolver)
    key = (id(document), operation_name, variables)
    entry = _TEMPLATES.get(key)
    if entry is None or entry[0] is not document:
        built = _LiveExecution.build(schema, document, None, None, variable_values, operation_name)
        if isinstance(built, list):  # the variables do not fit the operation: execute() reports it
            return execute(schema, document, root, context_value, variable_values, operation_name)
        if len(_TEMPLATES) >= _TEMPLATE_LIMIT:
            _TEMPLATES.clear()
        entry = _TEMPLATES[key] = (document, built)
    context = copy.copy(entry[1])
    context.root_value = root
    context.context_value = context_value
    errors = context.collected_errors = CollectedErrors()
    try:
        data = context.execute_operation(context.operation, root)
    except GraphQLError as error:
        errors.add(error, None)
        return context.build_response(None, errors.errors)
    if context.is_awaitable(data):
        return _completed(context, data)
    return context.build_response(data, errors.errors)  # type: ignore[arg-type]


async def _completed(context: ExecutionContext, pending: Any) -> ExecutionResult:
    errors = context.collected_errors
    try:
        return context.build_response(await pending, errors.errors)
    except GraphQLError as error:
        errors.add(error, None)
        return context.build_response(None, errors.errors)


def _variables_key(variables: dict[str, Any] | None) -> str | None:
    """Canonical JSON of the operation's variables; None (never shared) if they are not plain JSON."""
    try:
        return json.dumps(variables, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None


def install() -> None:
    """Make strawberry subscribe through `subscribe` above (idempotent)."""
    strawberry_schema.subscribe = subscribe  # type: ignore[attr-defined,assignment]
