"""The schema: queries, mutations and subscriptions, with depth limits and masked unexpected errors."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from functools import cache
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    NameNode,
    NoSchemaIntrospectionCustomRule,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_operation_ast,
    specified_rules,
    validate,
)
from starlette.requests import Request
from strawberry.extensions import QueryDepthLimiter, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from graph.context import BadRequest, NotAuthenticated
from graph.core_schema import core_schema
from graph.documents import THREAD_PARSE_CHARS, DocumentCache, DocumentLimits, LimitError, cost_rule, literal_rule
from graph.execution import LiveExecutor
from graph.inputs import InputQueries
from graph.mutations import Mutation
from graph.queries import Query
from graph.subscriptions import GenerationNotFoundError, Subscription
from graph.templates import TemplateMutation

__all__ = ["MASKED_MESSAGE", "DocumentChecks", "SafelightSchema", "build_schema", "log_errors", "masked", "schema_sdl"]

log = logging.getLogger("graph.errors")

# Errors a client can act on; their messages are shown as they are.
_EXPECTED = (NotAuthenticated, BadRequest, GenerationNotFoundError, LimitError)

# Lines one result's errors may write to the log; the rest are summed up in one more line, so a request
# of thousands of failing aliases cannot flood the log and stall every other request while it writes.
LOGGED_ERRORS_PER_RESULT = 5


def _unexpected(error: GraphQLError) -> bool:
    """A failure of ours, not the client's: an exception other than the expected ones. graphql-core
    wraps its own GraphQLErrors for a client's mistakes (an Int of 2^31 in the variables), so those
    count as the client's too."""
    original = error.original_error
    if original is None or isinstance(error, LimitError):
        return False
    return not isinstance(original, (*_EXPECTED, GraphQLError))


def _error_id(error: GraphQLError) -> str:
    """The id an unexpected error is logged and shown with (set once, by `log_errors` or here)."""
    error_id = (error.extensions or {}).get("errorId")
    if not isinstance(error_id, str):
        error_id = uuid.uuid4().hex[:12]
        error.extensions = {**(error.extensions or {}), "errorId": error_id}
    return error_id


def log_errors(errors: list[GraphQLError]) -> None:
    """Client mistakes at INFO without tracebacks, unexpected failures at ERROR with theirs; at most
    `LOGGED_ERRORS_PER_RESULT` lines of each, then one line that counts the rest."""
    expected = [e for e in errors if not _unexpected(e)]
    unexpected = [e for e in errors if _unexpected(e)]
    for error in expected[:LOGGED_ERRORS_PER_RESULT]:
        log.info("client error: %s (at %s)", error.message[:500], error.path)
    if len(expected) > LOGGED_ERRORS_PER_RESULT:
        log.info("client error: %d more in the same result", len(expected) - LOGGED_ERRORS_PER_RESULT)
    for error in unexpected[:LOGGED_ERRORS_PER_RESULT]:
        log.error("unexpected error %s in %s", _error_id(error), error.path, exc_info=error.original_error)
    if len(unexpected) > LOGGED_ERRORS_PER_RESULT:
        rest = [_error_id(e) for e in unexpected[LOGGED_ERRORS_PER_RESULT:]]
        log.error("%d more unexpected errors in the same result: %s", len(rest), " ".join(rest[:100]))


def _should_mask(error: GraphQLError) -> bool:
    if not _unexpected(error):
        return False
    _error_id(error)
    return True


MASKED_MESSAGE = "Unexpected error (see the logs)"


class _Masked(SchemaExtension):
    """Unexpected errors reach a client as `MASKED_MESSAGE` with the id they were logged under.

    What strawberry's MaskErrors does, on the same documented hooks, minus its runtime Protocol check
    per result (typing's slow path, ~6 % of the API's CPU per live event): a result without errors,
    nearly every one, costs one attribute read. Masking is idempotent: a masked error has no original.
    """

    def on_operation(self) -> Iterator[None]:
        yield
        _mask(self.execution_context.result)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        _mask(result)
        yield


def _mask(result: object) -> None:
    errors: list[GraphQLError] | None = getattr(result, "errors", None)
    if errors:
        result.errors = masked(errors)  # type: ignore[attr-defined]


def masked(errors: list[GraphQLError]) -> list[GraphQLError]:
    """`errors` as a client may see them: unexpected ones as `MASKED_MESSAGE` with their id."""
    return [_anonymised(error) if _should_mask(error) else error for error in errors]


def _anonymised(error: GraphQLError) -> GraphQLError:
    return GraphQLError(
        MASKED_MESSAGE,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"errorId": (error.extensions or {}).get("errorId")},
    )


class DocumentChecks:
    """Parsing and validation, each cached by document text, with the depth and cost limits among the rules:
    one per schema, used by the HTTP view's extension below and by the websocket server (graph/ws_protocol.py)."""

    def __init__(self, documents: DocumentCache, rules: tuple[Any, ...], first_rules: tuple[Any, ...]):
        self._documents = documents
        self._rules = rules
        self._first_rules = first_rules

    def parse(self, query: str) -> DocumentNode:
        """Bounded by the query's length and tokens (graph/documents.py); raises GraphQLError."""
        return self._documents.parse(query)

    async def parse_async(self, query: str) -> DocumentNode:
        """`parse`, in a thread for a text too long for the event loop (bounded, but still slow)."""
        if len(query) > THREAD_PARSE_CHARS:
            return await asyncio.to_thread(self._documents.parse, query)
        return self._documents.parse(query)

    def validate(
        self, schema: GraphQLSchema, document: DocumentNode, rules: tuple[Any, ...] = tuple(specified_rules)
    ) -> list[GraphQLError]:
        return self._documents.validate(schema, document, (*rules, *self._rules), self._run_rules)

    def _run_rules(self, schema: GraphQLSchema, document: DocumentNode, rules: tuple[Any, ...]) -> list[GraphQLError]:
        """The cost rule alone first: it stops early, where graphql-core's rules (and the depth limit) would
        walk every expansion of fragments that spread fragments, exponentially many."""
        return validate(schema, document, self._first_rules) or validate(schema, document, rules)


class _DocumentChecks(SchemaExtension):
    """`DocumentChecks` as strawberry's parse and validate steps of an HTTP request.

    Clients send the same few documents again and again, and parsing and validating each anew would be
    a large part of a mutation's CPU (bench/submit.py measures it). One extension does what strawberry's
    ParserCache, ValidationCache and AddValidationRules would: strawberry instantiates every extension per
    operation.
    """

    def __init__(self, checks: DocumentChecks):
        super().__init__()
        self._checks = checks

    async def on_parse(self) -> AsyncIterator[None]:
        context = self.execution_context
        assert context.query is not None  # strawberry refuses a request without one before parsing
        try:
            context.graphql_document = await self._checks.parse_async(context.query)
        except GraphQLError as error:
            # Refused before execution, as strawberry refuses a document that does not parse; an error
            # raised from this hook would instead escape a websocket operation as an unexpected failure.
            # The stand-in document keeps strawberry from parsing the refused text itself.
            allowed = {kind.value for kind in context.allowed_operations}
            kind = OperationType.QUERY if OperationType.QUERY.value in allowed else OperationType.SUBSCRIPTION
            context.graphql_document = _refused_document(kind, context.operation_name)
            context.pre_execution_errors = [error]
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.pre_execution_errors:  # refused while parsing (above)
            yield
            return
        assert context.graphql_document is not None  # parsed by on_parse above
        schema: SafelightSchema = context.schema  # type: ignore[assignment]
        context.pre_execution_errors = self._checks.validate(
            schema.graphql_schema, context.graphql_document, context.validation_rules
        )
        if not context.pre_execution_errors and _over_http(context.context):
            operation = get_operation_ast(context.graphql_document, context.operation_name)
            if operation is not None and operation.operation is OperationType.SUBSCRIPTION:
                context.pre_execution_errors = [
                    GraphQLError(SUBSCRIPTION_OVER_HTTP, extensions={"code": "SUBSCRIPTION_NEEDS_WEBSOCKET"})
                ]
        yield


SUBSCRIPTION_OVER_HTTP = "subscriptions need the websocket (graphql-transport-ws or graphql-ws) at this URL"


def _refused_document(kind: OperationType, operation_name: str | None) -> DocumentNode:
    """`query <name> { __typename }` (or a subscription where only those are allowed): a document strawberry
    can read the operation type of, never executed."""
    name = NameNode(value=operation_name) if operation_name else None
    selection = FieldNode(name=NameNode(value="__typename"))
    operation = OperationDefinitionNode(
        operation=kind, name=name, selection_set=SelectionSetNode(selections=(selection,))
    )
    return DocumentNode(definitions=(operation,))


def _over_http(context: Any) -> bool:
    return isinstance(getattr(context, "request", None), Request)


class SafelightSchema(strawberry.Schema):
    """The strawberry schema, executed by `graph.execution.LiveExecutor`, with our error logging."""

    def __init__(self, *, checks: DocumentChecks, **kwargs: Any) -> None:
        super().__init__(
            extensions=[lambda: _DocumentChecks(checks), _Masked], execution_context_class=LiveExecutor, **kwargs
        )
        self.graphql_schema = core_schema(self)
        self.checks = checks

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Instead of strawberry's one ERROR with a traceback per error: `log_errors`."""
        log_errors(errors)


def build_schema(
    *, max_depth: int = 12, limits: DocumentLimits | None = None, introspection: bool = True
) -> SafelightSchema:
    """The schema; parsed and validated documents are kept by text (LRU, bounded by `limits`)."""
    limits = limits or DocumentLimits()
    # One class per rule for the schema: QueryDepthLimiter builds a new class per instance, and the
    # validation cache keys on the rule classes, so a limiter made per request never hit the cache.
    rules: tuple[Any, ...] = tuple(QueryDepthLimiter(max_depth=max_depth).validation_rules)
    first_rules = (cost_rule(limits), literal_rule())
    if not introspection:
        rules = (*rules, NoSchemaIntrospectionCustomRule)
    documents = DocumentCache(limits)
    return SafelightSchema(
        query=merge_types("Query", (Query, InputQueries)),
        mutation=merge_types("Mutation", (Mutation, TemplateMutation)),
        subscription=Subscription,
        checks=DocumentChecks(documents, rules, first_rules),
        config=StrawberryConfig(auto_camel_case=True),
    )


@cache
def schema_sdl() -> str:
    return build_schema().as_str() + "\n"
