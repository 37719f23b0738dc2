"""Subscription execution: one GraphQL execution per distinct (event, operation, variables).

Every subscriber of a generation receives the same event objects (`graph.subscriptions.to_event` builds
one per bus event and base URL), and most watch it through the same page's query. A root marked with
`share_results` keeps the result of each distinct (operation, variables) executed against it, and every
other subscriber with the same operation receives that result instead of executing the selection set
again. Results with errors are never shared: each subscriber gets its own execution, so error masking
and logging stay per operation.

This is graphql-core's documented way to customise execution: a subclass of its `Executor`, which
strawberry builds every HTTP operation with (`strawberry.Schema(execution_context_class=...)`) and the
websocket server (graph/ws_protocol.py) every websocket one; the server runs a subscription's events
through `event_result`, graphql-core's own "compose the pipeline" route (`create_source_event_stream`,
`execute_subscription_event`), without a task or a mapping iterator per subscription.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from graphql import ExecutionResult, Executor, GraphQLError, OperationDefinitionNode, execute_subscription_event
from graphql.pyutils import AwaitableOrValue

__all__ = ["LiveExecutor", "share_results"]

_SHARED = "_safelight_shared_results"

T = TypeVar("T")

# One shared result per distinct operation of an event; an event's subscribers use a few operations.
_SHARED_PER_EVENT = 64


def share_results(root: T) -> T:
    """Mark `root` (an object yielded to many subscribers) so that equal operations share one result."""
    setattr(root, _SHARED, {})
    return root


class LiveExecutor(Executor[Any]):
    """graphql-core's executor, sharing error-free results of equal operations on a marked root.

    The key of an operation among others executed against the same root is its operation node (one
    object per query text: parsed documents are cached by text, graph/documents.py) and its variables
    as canonical JSON; the node is kept with the result, so its id cannot be reused while the root lives.
    """

    operation_extensions: Any
    share_key: tuple[int, str] | None

    def __init__(self, *args: Any, operation_extensions: Any = None, **kwargs: Any) -> None:
        # strawberry passes the request's `extensions` to its executor class; resolvers of ours read none.
        super().__init__(*args, **kwargs)
        self.operation_extensions = operation_extensions
        self.share_key = None

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> list[GraphQLError] | LiveExecutor:
        built = super().build(*args, **kwargs)
        if isinstance(built, LiveExecutor):
            variables = _variables_key(built.variable_values.coerced)
            built.share_key = None if variables is None else (id(built.operation), variables)
        return built  # type: ignore[return-value]

    def build_per_event_executor(self, payload: Any) -> Executor[Any]:
        """A new executor per event from the operation's prepared parts, not graphql-core's copy of it.

        The copies share the operation executor's memo of collected sub-fields, keyed by the identity of
        lists each event's execution creates anew: it grew by two entries (~34 live objects) per event
        for the life of the subscription, and every full collection walked them. The constructor takes
        the operation, fragments and coerced variables as they are: nothing is parsed or coerced again.
        """
        executor = type(self)(
            schema=self.schema,
            fragment_definitions=self.fragment_definitions,
            fragments=self.fragments,
            root_value=payload,
            context_value=self.context_value,
            operation=self.operation,
            variable_values=self.variable_values,
            field_resolver=self.field_resolver,
            type_resolver=self.type_resolver,
            subscribe_field_resolver=self.subscribe_field_resolver,
            enable_early_execution=self.enable_early_execution,
            middleware_manager=self.middleware_manager,
            is_awaitable=self.is_awaitable,
            is_async_iterable=self.is_async_iterable,
            hide_suggestions=self.hide_suggestions,
            abort_signal=self.abort_signal,
            hooks=self.hooks,
            operation_extensions=self.operation_extensions,
        )
        executor.share_key = self.share_key
        return executor

    def event_result(self, payload: Any) -> AwaitableOrValue[ExecutionResult]:
        """One event of this subscription (graph/ws_protocol.py): the result another subscriber with the same
        operation and variables already has for `payload`, or graphql-core's execution of the event. A shared
        result costs no per-event executor."""
        shared = getattr(payload, _SHARED, None)
        if shared is not None and self.share_key is not None:
            entry = shared.get(self.share_key)
            if entry is not None and entry[0] is self.operation:
                return entry[1]  # type: ignore[no-any-return]
        return execute_subscription_event(self.build_per_event_executor(payload))

    def execute_operation(self, serially: bool | None = None) -> AwaitableOrValue[Any]:
        shared: dict[tuple[int, str], tuple[OperationDefinitionNode, ExecutionResult]] | None = getattr(
            self.root_value, _SHARED, None
        )
        key = self.share_key
        if shared is None or key is None:
            return super().execute_operation(serially)
        entry = shared.get(key)
        if entry is not None and entry[0] is self.operation:
            return entry[1]
        result = super().execute_operation(serially)
        if self.is_awaitable(result):
            return self._kept(shared, key, result)
        self._keep(shared, key, result)
        return result

    async def _kept(
        self, shared: dict[tuple[int, str], tuple[OperationDefinitionNode, ExecutionResult]], key: Any, pending: Any
    ) -> Any:
        result = await pending
        self._keep(shared, key, result)
        return result

    def _keep(
        self, shared: dict[tuple[int, str], tuple[OperationDefinitionNode, ExecutionResult]], key: Any, result: Any
    ) -> None:
        if isinstance(result, ExecutionResult) and not result.errors and len(shared) < _SHARED_PER_EVENT:
            shared[key] = (self.operation, result)


def _variables_key(variables: dict[str, Any] | None) -> str | None:
    """Canonical JSON of the operation's variables; None (never shared) if they are not plain JSON."""
    try:
        return json.dumps(variables, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
