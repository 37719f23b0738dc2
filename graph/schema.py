"""The schema: queries, mutations and subscriptions, with depth limits and masked unexpected errors."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from functools import cache, lru_cache
from typing import Any

import strawberry
from graphql import DocumentNode, GraphQLError, GraphQLSchema, OperationType, get_operation_ast, parse, specified_rules
from strawberry.extensions import MaskErrors, QueryDepthLimiter, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import validate_document
from strawberry.types.execution import StreamExecutionResult

from graph import execution
from graph.context import BadRequest, NotAuthenticated
from graph.mutations import Mutation
from graph.queries import Query
from graph.subscriptions import GenerationNotFoundError, Subscription

__all__ = ["SafelightSchema", "build_schema", "schema_sdl"]

log = logging.getLogger("graph.errors")

# Errors a client can act on; their messages are shown as they are.
_EXPECTED = (NotAuthenticated, BadRequest, GenerationNotFoundError)


def _should_mask(error: GraphQLError) -> bool:
    original = error.original_error
    if original is None or isinstance(original, _EXPECTED):
        return False
    error_id = uuid.uuid4().hex[:12]
    log.error("unexpected error %s in %s", error_id, error.path, exc_info=original)
    error.extensions = {**(error.extensions or {}), "errorId": error_id}
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
    """Parsing and validation, each cached by document text, with the depth limit among the rules.

    Parsing and validating the same document again for every request was ~31 % of the API's CPU per
    mutation (bench/submit.py). One extension does what strawberry's ParserCache, ValidationCache and
    AddValidationRules would: strawberry instantiates every extension per operation and keeps an
    `on_operation` hook open for a subscription's whole life, and this process holds thousands.
    """

    def __init__(self, parse: Callable[..., DocumentNode], validate: Callable[..., Any], rules: tuple[Any, ...]):
        super().__init__()
        self._parse = parse
        self._validate = validate
        self._rules = rules

    def parse(self, query: str, **options: Any) -> DocumentNode:
        return self._parse(query, **options)

    def validate(self, schema: GraphQLSchema, document: DocumentNode, rules: tuple[Any, ...]) -> list[GraphQLError]:
        errors: list[GraphQLError] = self._validate(schema, document, (*rules, *self._rules))
        return errors

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        assert context.query is not None  # strawberry refuses a request without one before parsing
        context.graphql_document = self.parse(context.query, **context.parse_options)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        assert context.graphql_document is not None  # parsed by on_parse above
        context.pre_execution_errors = self.validate(
            context.schema._schema, context.graphql_document, context.validation_rules
        )
        yield


class SafelightSchema(strawberry.Schema):
    """The strawberry schema, plus what the websocket handlers need to run a subscription without
    strawberry's per-operation pipeline (graph/websocket.py): the same parse and validation caches,
    and the same error reporting and masking."""

    def __init__(self, *, prepared: Callable[[], _Prepared], **kwargs: Any) -> None:
        super().__init__(extensions=[prepared, _Masked], **kwargs)
        self._prepared = prepared()
        self._masked = _Masked()

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


def build_schema(*, max_depth: int = 12, cache_size: int = 512) -> SafelightSchema:
    """The schema; `cache_size` documents' parses and validations are kept (LRU, by document text)."""
    execution.install()  # subscriptions without graphql-core 3.2's tasks per event, results shared
    # One depth rule class for the schema: QueryDepthLimiter builds a new class per instance, and the
    # validation cache keys on the rule classes, so a limiter made per request never hit the cache.
    depth_rules = tuple(QueryDepthLimiter(max_depth=max_depth).validation_rules)
    parse_cached = lru_cache(maxsize=cache_size)(parse)
    validate_cached = lru_cache(maxsize=cache_size)(validate_document)
    return SafelightSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        prepared=lambda: _Prepared(parse_cached, validate_cached, depth_rules),
        config=StrawberryConfig(auto_camel_case=True),
    )


@cache
def schema_sdl() -> str:
    return build_schema().as_str() + "\n"
