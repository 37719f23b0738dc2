"""The schema: queries, mutations and subscriptions, with depth limits and masked unexpected errors."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from functools import cache
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    NoSchemaIntrospectionCustomRule,
    OperationType,
    get_operation_ast,
    specified_rules,
)
from starlette.requests import Request
from strawberry.extensions import MaskErrors, QueryDepthLimiter, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import validate_document
from strawberry.types.execution import StreamExecutionResult

from graph import execution
from graph.context import BadRequest, NotAuthenticated
from graph.documents import THREAD_PARSE_CHARS, DocumentCache, DocumentLimits, LimitError, cost_rule, literal_rule
from graph.mutations import Mutation
from graph.queries import Query
from graph.subscriptions import GenerationNotFoundError, Subscription

__all__ = ["SafelightSchema", "build_schema", "schema_sdl"]

log = logging.getLogger("graph.errors")

# Errors a client can act on; their messages are shown as they are.
_EXPECTED = (NotAuthenticated, BadRequest, GenerationNotFoundError, LimitError)

# Lines one result's errors may write to the log; the rest are summed up in one more line. A request
# with 2,000 failing aliases wrote 139 MB of tracebacks and stalled every other request meanwhile.
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


class _Masked(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=_should_mask, error_message="Unexpected error (see the logs)")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.extensions = {"errorId": (error.extensions or {}).get("errorId")}
        return masked

    def _process_result(self, result: object) -> None:
        """MaskErrors' own, without its runtime Protocol isinstance check: typing's slow path, twice per
        operation, where a look at `errors` says the same (an HTTP query made 12 % fewer calls)."""
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        """MaskErrors' hook, skipped at once for a result without errors (nearly every one)."""
        self._stream_result_processed = True
        if (
            getattr(result, "errors", None)
            or getattr(result, "incremental", None)
            or getattr(result, "completed", None)
        ):
            self._process_stream_result(result)
        yield None


class _Prepared(SchemaExtension):
    """Parsing and validation, each cached by document text, with the depth and cost limits among the rules.

    Parsing and validating the same document again for every request was ~31 % of the API's CPU per
    mutation (bench/submit.py). One extension does what strawberry's ParserCache, ValidationCache and
    AddValidationRules would: strawberry instantiates every extension per operation and keeps an
    `on_operation` hook open for a subscription's whole life, and this process holds thousands.
    """

    def __init__(self, documents: DocumentCache, rules: tuple[Any, ...], first_rules: tuple[Any, ...]):
        super().__init__()
        self._documents = documents
        self._rules = rules
        self._first_rules = first_rules

    def parse(self, query: str) -> DocumentNode:
        """Bounded by the query's length and tokens (graph/documents.py); raises GraphQLError."""
        return self._documents.parse(query)

    def validate(self, schema: GraphQLSchema, document: DocumentNode, rules: tuple[Any, ...]) -> list[GraphQLError]:
        return self._documents.validate(schema, document, (*rules, *self._rules), self._run_rules)

    def _run_rules(self, schema: GraphQLSchema, document: DocumentNode, rules: tuple[Any, ...]) -> list[GraphQLError]:
        """The cost rule alone first: it stops early, where graphql-core's rules (and the depth limit) would
        walk every expansion of fragments that spread fragments, exponentially many."""
        errors: list[GraphQLError] = validate_document(schema, document, self._first_rules)
        return errors or validate_document(schema, document, rules)

    async def on_parse(self) -> AsyncIterator[None]:
        context = self.execution_context
        assert context.query is not None  # strawberry refuses a request without one before parsing
        if len(context.query) > THREAD_PARSE_CHARS:  # bounded, but still too long for the event loop
            context.graphql_document = await asyncio.to_thread(self.parse, context.query)
        else:
            context.graphql_document = self.parse(context.query)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        assert context.graphql_document is not None  # parsed by on_parse above
        context.pre_execution_errors = self.validate(
            context.schema._schema, context.graphql_document, context.validation_rules
        )
        if not context.pre_execution_errors and _over_http(context.context):
            operation = get_operation_ast(context.graphql_document, context.operation_name)
            if operation is not None and operation.operation is OperationType.SUBSCRIPTION:
                context.pre_execution_errors = [
                    GraphQLError(SUBSCRIPTION_OVER_HTTP, extensions={"code": "SUBSCRIPTION_NEEDS_WEBSOCKET"})
                ]
        yield


SUBSCRIPTION_OVER_HTTP = "subscriptions need the websocket (graphql-transport-ws or graphql-ws) at this URL"


def _over_http(context: Any) -> bool:
    return isinstance(getattr(context, "request", None), Request)


class SafelightSchema(strawberry.Schema):
    """The strawberry schema, plus what the websocket handlers need to run a subscription without
    strawberry's per-operation pipeline (graph/websocket.py): the same parse and validation caches,
    and the same error reporting and masking."""

    def __init__(self, *, prepared: Callable[[], _Prepared], **kwargs: Any) -> None:
        super().__init__(extensions=[prepared, _Masked], **kwargs)
        self._prepared = prepared()
        self._masked = _Masked()

    async def parse(self, query: str) -> GraphQLError | None:
        """Parse `query` into the cache `subscription_document` reads (long texts in a thread); its error.

        The websocket handlers call this first: an error raised by the parsing hook would escape
        strawberry's stream as an unexpected exception (logged with a traceback, the client told nothing).
        """
        try:
            if len(query) > THREAD_PARSE_CHARS:
                await asyncio.to_thread(self._prepared.parse, query)
            else:
                self._prepared.parse(query)
        except GraphQLError as error:
            return error
        return None

    def subscription_document(self, query: str, operation_name: str | None) -> DocumentNode | None:
        """The parsed document if `query` is a valid subscription operation; None for anything else."""
        try:
            document = self._prepared.parse(query)
        except GraphQLError:
            return None
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation is not OperationType.SUBSCRIPTION:
            return None
        if self._prepared.validate(self._schema, document, tuple(specified_rules)):
            return None
        return document

    def report(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        """What strawberry does with a streamed result's errors: log them, then mask unexpected ones."""
        self._process_errors(errors)
        return self._masked._process_errors(errors)

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Instead of strawberry's one ERROR with a traceback per error: `log_errors`."""
        log_errors(errors)


def build_schema(
    *, max_depth: int = 12, limits: DocumentLimits | None = None, introspection: bool = True
) -> SafelightSchema:
    """The schema; parsed and validated documents are kept by text (LRU, bounded by `limits`)."""
    execution.install()  # subscriptions without graphql-core 3.2's tasks per event, results shared
    limits = limits or DocumentLimits()
    # One class per rule for the schema: QueryDepthLimiter builds a new class per instance, and the
    # validation cache keys on the rule classes, so a limiter made per request never hit the cache.
    rules: tuple[Any, ...] = tuple(QueryDepthLimiter(max_depth=max_depth).validation_rules)
    first_rules = (cost_rule(limits), literal_rule())
    if not introspection:
        rules = (*rules, NoSchemaIntrospectionCustomRule)
    documents = DocumentCache(limits)
    return SafelightSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        prepared=lambda: _Prepared(documents, rules, first_rules),
        config=StrawberryConfig(auto_camel_case=True),
    )


@cache
def schema_sdl() -> str:
    return build_schema().as_str() + "\n"
