"""GraphQL documents: bounded parsing, a cache bounded in bytes as well as entries, and the cost rules.

A document's syntax tree takes ~110 times its text in memory (a 1 MB query held ~110 MB), and parsing
it blocked the event loop for seconds. So a query is refused before parsing when its text is longer
than `max_chars`, graphql-core stops parsing after `max_tokens` tokens, texts longer than
`THREAD_PARSE_CHARS` are parsed in a thread, and the cache of parsed (and validated) documents is
bounded by the total length of the texts it keeps as well as by their number.

The validation rules below bound what one accepted document can ask for: aliases (each one a field
resolved again) and a cost in which a field with a `first` argument multiplies what it selects.
Their errors name the limit and the setting that raises it (`extensions.code`).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FloatValueNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
    parse,
)
from graphql.validation import ASTValidationContext

__all__ = [
    "THREAD_PARSE_CHARS",
    "DocumentCache",
    "DocumentLimits",
    "LimitError",
    "check_length",
    "cost_rule",
    "literal_rule",
    "string_problem",
]

# Texts longer than this are parsed in a thread (graph/schema.py); shorter ones take well under 1 ms.
THREAD_PARSE_CHARS = 8_192


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    max_chars: int = 50_000
    max_tokens: int = 5_000
    max_aliases: int = 30
    max_cost: int = 10_000
    default_page: int = 20  # what a `first` argument left out means (graph/queries.py)
    max_page: int = 100
    cache_entries: int = 512
    cache_chars: int = 1_000_000


class LimitError(GraphQLError):
    """A document over one of the limits; `extensions` name it: code, limit, setting."""

    def __init__(self, message: str, *, code: str, limit: int, setting: str, nodes: Any = None) -> None:
        super().__init__(message, nodes, extensions={"code": code, "limit": limit, "setting": setting})


def check_length(query: str, limits: DocumentLimits) -> None:
    if len(query) > limits.max_chars:
        raise LimitError(
            f"the query is {len(query):,} characters long; the limit is {limits.max_chars:,}",
            code="QUERY_TOO_LONG",
            limit=limits.max_chars,
            setting="SAFELIGHT_GRAPHQL_MAX_QUERY_CHARS",
        )


class DocumentCache:
    """Parsed documents and their validation results by query text: LRU, bounded in entries and characters.

    One entry holds a document and every validation of it, so evicting the text frees the tree too.
    Thread-safe: large texts are parsed in a worker thread.
    """

    def __init__(self, limits: DocumentLimits) -> None:
        self._limits = limits
        self._entries: OrderedDict[str, tuple[DocumentNode, dict[Any, list[GraphQLError]]]] = OrderedDict()
        self._by_document: dict[int, str] = {}
        self._chars = 0
        self._lock = threading.Lock()

    @property
    def chars(self) -> int:
        return self._chars

    def __len__(self) -> int:
        return len(self._entries)

    def parse(self, query: str) -> DocumentNode:
        with self._lock:
            entry = self._entries.get(query)
            if entry is not None:
                self._entries.move_to_end(query)
                return entry[0]
        check_length(query, self._limits)
        try:
            document = parse(query, max_tokens=self._limits.max_tokens)
        except GraphQLError as error:
            if "tokens. Parsing aborted" in error.message:  # graphql-core: "Document contains more than N tokens."
                raise LimitError(
                    f"the query has more than {self._limits.max_tokens:,} tokens",
                    code="QUERY_TOO_MANY_TOKENS",
                    limit=self._limits.max_tokens,
                    setting="SAFELIGHT_GRAPHQL_MAX_TOKENS",
                ) from None
            raise
        self._store(query, document)
        return document

    def _store(self, query: str, document: DocumentNode) -> None:
        if len(query) > self._limits.cache_chars:
            return
        with self._lock:
            if query in self._entries:
                return
            self._entries[query] = (document, {})
            self._by_document[id(document)] = query
            self._chars += len(query)
            while self._entries and (
                len(self._entries) > self._limits.cache_entries or self._chars > self._limits.cache_chars
            ):
                old_query, (old_document, _) = self._entries.popitem(last=False)
                self._by_document.pop(id(old_document), None)
                self._chars -= len(old_query)

    def validate(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        rules: Sequence[type[ASTValidationRule]],
        run: Callable[..., list[GraphQLError]],
    ) -> list[GraphQLError]:
        """`run(schema, document, rules)`, remembered with the document while its text stays cached."""
        key = (id(schema), tuple(rules))
        with self._lock:
            query = self._by_document.get(id(document))
            entry = self._entries.get(query) if query is not None else None
            if entry is not None and entry[0] is document and key in entry[1]:
                return entry[1][key]
        errors = run(schema, document, tuple(rules))
        with self._lock:
            if entry is not None and entry[0] is document:
                entry[1][key] = errors
        return errors


def literal_rule() -> type[ASTValidationRule]:
    """Literals in the document follow the same rules as in the JSON (graph/request_json.py): strings without
    NUL or lone surrogates (PostgreSQL refuses both; the client should hear it, not "Unexpected error"),
    finite numbers."""

    class PlainLiterals(ASTValidationRule):
        def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
            problem = string_problem(node.value)
            if problem is not None:
                self.report_error(GraphQLError(problem, [node], extensions={"code": "INVALID_STRING"}))

        def enter_float_value(self, node: FloatValueNode, *_: Any) -> None:
            if not math.isfinite(float(node.value)):  # 1e400: graphql-core would make it Infinity
                message = f"the number {node.value[:40]} is out of range"
                self.report_error(GraphQLError(message, [node], extensions={"code": "INVALID_NUMBER"}))

    return PlainLiterals


def string_problem(text: str) -> str | None:
    """Why `text` cannot be stored as text, or None."""
    if "\x00" in text:
        return "strings may not contain NUL (\\u0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "strings may not contain lone surrogates (\\ud800-\\udfff unpaired)"
    return None


def _fragments(context: ASTValidationContext) -> dict[str, FragmentDefinitionNode]:
    return {
        definition.name.value: definition
        for definition in context.document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }


def cost_rule(limits: DocumentLimits) -> type[ASTValidationRule]:
    """Per operation: at most `max_aliases` aliased fields, and a cost of at most `max_cost`, where each
    field costs 1 and a field with a `first` argument costs `first` times what it selects (a variable
    `first` counts as the largest page). Fragments count where they are spread."""

    class OperationCost(ASTValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            walk = _Walk(_fragments(self.context), limits)
            cost = walk.cost(node.selection_set, frozenset())
            if walk.aliases > limits.max_aliases:
                self.report_error(
                    LimitError(
                        f"the operation uses more than {limits.max_aliases} aliases (the limit)",
                        code="TOO_MANY_ALIASES",
                        limit=limits.max_aliases,
                        setting="SAFELIGHT_GRAPHQL_MAX_ALIASES",
                        nodes=[node],
                    )
                )
            elif cost > limits.max_cost:
                self.report_error(
                    LimitError(
                        f"the operation's cost is over the limit of {limits.max_cost:,} (1 per field, times "
                        "`first` for a page); ask for fewer items or fewer fields",
                        code="QUERY_TOO_COSTLY",
                        limit=limits.max_cost,
                        setting="SAFELIGHT_GRAPHQL_MAX_COST",
                        nodes=[node],
                    )
                )

    return OperationCost


class _Walk:
    """Cost and aliases of a selection set, fragments expanded; stops once either is over its limit,
    so a document built to be expensive (fragments spreading fragments) is cheap to refuse."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode], limits: DocumentLimits) -> None:
        self._fragments = fragments
        self._limits = limits
        self._fields = 0
        self.aliases = 0

    def _over(self) -> bool:
        return self._fields > self._limits.max_cost or self.aliases > self._limits.max_aliases

    def cost(self, selection_set: SelectionSetNode | None, seen: frozenset[str]) -> int:
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                self._fields += 1
                self.aliases += 1 if selection.alias else 0
                total += 1 + _page(selection, self._limits) * self.cost(selection.selection_set, seen)
            elif isinstance(selection, InlineFragmentNode):
                total += self.cost(selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value  # a fragment inside itself: counted once (validation refuses it)
                fragment = self._fragments.get(name)
                if fragment is not None and name not in seen:
                    total += self.cost(fragment.selection_set, seen | {name})
            if total > self._limits.max_cost or self._over():
                return max(total, self._limits.max_cost + 1)
        return total


def _page(field: FieldNode, limits: DocumentLimits) -> int:
    for argument in field.arguments or ():
        if argument.name.value != "first":
            continue
        if isinstance(argument.value, IntValueNode):
            return max(1, min(int(argument.value.value), limits.max_page))
        if isinstance(argument.value, VariableNode):
            return limits.max_page
    return 1
