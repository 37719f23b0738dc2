"""The schema: queries, mutations and subscriptions, with depth limits and masked unexpected errors."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from functools import cache, lru_cache
from typing import Any

import strawberry
from graphql import DocumentNode, GraphQLError, parse
from strawberry.extensions import MaskErrors, QueryDepthLimiter, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import validate_document
from strawberry.types.execution import StreamExecutionResult

from graph import execution
from graph.context import BadRequest, NotAuthenticated
from graph.mutations import Mutation
from graph.queries import Query
from graph.subscriptions import GenerationNotFoundError, Subscription

__all__ = ["build_schema", "schema_sdl"]

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

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        """MaskErrors' hook without its per-result Protocol isinstance check (typing's slow path).

        It runs for every subscription event to every subscriber; nearly all carry no errors.
        """
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

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        context.graphql_document = self._parse(context.query, **context.parse_options)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        rules = (*context.validation_rules, *self._rules)
        context.pre_execution_errors = self._validate(context.schema._schema, context.graphql_document, rules)
        yield


def build_schema(*, max_depth: int = 12, cache_size: int = 512) -> strawberry.Schema:
    """The schema; `cache_size` documents' parses and validations are kept (LRU, by document text)."""
    execution.install()  # subscriptions without graphql-core 3.2's tasks per event, results shared
    # One depth rule class for the schema: QueryDepthLimiter builds a new class per instance, and the
    # validation cache keys on the rule classes, so a limiter made per request never hit the cache.
    depth_rules = tuple(QueryDepthLimiter(max_depth=max_depth).validation_rules)
    parse_cached = lru_cache(maxsize=cache_size)(parse)
    validate_cached = lru_cache(maxsize=cache_size)(validate_document)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[lambda: _Prepared(parse_cached, validate_cached, depth_rules), _Masked],
        config=StrawberryConfig(auto_camel_case=True),
    )


@cache
def schema_sdl() -> str:
    return build_schema().as_str() + "\n"
