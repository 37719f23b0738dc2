"""Subscription execution (graph/execution.py): no tasks per event or idle subscription; one execution per event."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from inspect import isawaitable
from typing import Any

import pytest
import websockets
from graphql import Executor
from redis.asyncio import Redis

from db.events import EventKind
from graph import execution
from jobs.bus import BusEvent, publish
from jobs.keys import Keys
from settings import Settings
from tests.graph.test_subscriptions import _settle
from tests.stack import GraphQLClient, Subscription

MakeClient = Callable[..., Awaitable[GraphQLClient]]

WATCH = "subscription { myGenerationEvents { generationId seq kind progress { step maxSteps } } }"
WATCH_OTHER = "subscription { myGenerationEvents { kind progress { percent } } }"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def _viewer_id(client: GraphQLClient) -> uuid.UUID:
    data = await client.query("{ viewer { id } }")
    return uuid.UUID(data["viewer"]["id"])


def _progress(owner: uuid.UUID, generation: uuid.UUID, step: int) -> BusEvent:
    payload = {"phase": "EXECUTING", "percent": step * 10.0, "step": step, "maxSteps": 10, "emittedAt": time.time()}
    return BusEvent(generation, owner, 1, EventKind.PROGRESS, payload, time.time())


def test_strawberry_executes_with_safelights_executor() -> None:
    from graph.schema import build_schema

    assert build_schema().execution_context_class is execution.LiveExecutor


async def test_idle_subscriptions_hold_no_task_of_their_own(make_client: MakeClient, api_url: str) -> None:
    """One task per operation (graph/ws_protocol.py), none for mapping its events (graphql-core 3.2 kept two)."""
    client = await make_client()
    url = "ws" + api_url.removeprefix("http") + "/graphql"
    operations = 30
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {client.token}"}}))
        await ws.recv()
        baseline = await _settle(api_url, -1, within=0.05)  # just a reading
        before = asyncio.all_tasks()
        for i in range(operations):
            await ws.send(json.dumps({"id": str(i), "type": "subscribe", "payload": {"query": WATCH}}))
        assert await _settle(api_url, baseline + operations) == baseline + operations
        added = await _tasks_settled(before, expected=operations)
    # Exactly one task per operation, all running the same coroutine: nothing else per subscription.
    assert added == Counter({"Connection.run_operation": operations}), added


async def _tasks_settled(before: set[asyncio.Task[Any]], *, expected: int, within: float = 10.0) -> Counter[str]:
    """The coroutines of tasks started since `before` and still alive, once their count is `expected` (the
    request tasks of `_settle` end on their own) or time runs out."""
    added: Counter[str] = Counter()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        added = Counter(
            task.get_coro().__qualname__  # type: ignore[union-attr]
            for task in asyncio.all_tasks() - before
            if not task.done() and task is not asyncio.current_task()
        )
        if sum(added.values()) == expected:
            break
        await asyncio.sleep(0.02)
    return added


async def test_subscribers_of_one_event_share_one_execution(
    make_client: MakeClient, api_url: str, redis: Redis, stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    executions = 0
    real_execute = Executor.execute_operation

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal executions
        executions += 1
        return real_execute(*args, **kwargs)

    monkeypatch.setattr(Executor, "execute_operation", counting)
    client = await make_client()
    owner = await _viewer_id(client)
    baseline = await _settle(api_url, -1, within=0.05)
    async with AsyncExitStack() as stack:
        same: list[Subscription] = [
            await stack.enter_async_context(client.subscription(WATCH, protocol=protocol))
            for protocol in ["graphql-transport-ws", "graphql-ws"] * 3
        ]
        other = await stack.enter_async_context(client.subscription(WATCH_OTHER))
        assert await _settle(api_url, baseline + 7) == baseline + 7
        generation = uuid.uuid4()
        for step in (1, 2):
            executions = 0
            assert await publish(redis, Keys(stack_settings.namespace), _progress(owner, generation, step))
            received = [await sub.next() for sub in same]
            assert executions <= 2, executions  # the six WATCH subscribers: one; the other query: one
            expected = {
                "generationId": str(generation),
                "seq": 1,
                "kind": "PROGRESS",
                "progress": {"step": step, "maxSteps": 10},
            }
            assert all(r == {"myGenerationEvents": expected} for r in received), received
            mine = {"kind": "PROGRESS", "progress": {"percent": step * 10.0}}
            assert await other.next() == {"myGenerationEvents": mine}
            assert executions == 2, executions


class _Event:
    """A root whose `boom` field fails."""

    def __init__(self) -> None:
        self.e = self
        self.ok = 1

    @property
    def boom(self) -> int:
        raise RuntimeError("boom")


async def _run_for_two_subscribers(root: Any, query: str) -> tuple[int, list[Any]]:
    """Map one shared root through two subscribers' streams; how many executions ran, and the results."""
    from graphql import build_schema, parse, subscribe

    schema = build_schema("type Query { a: Int } type Subscription { e: E } type E { ok: Int boom: Int }")
    document = parse(query)
    executions = 0

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal executions
        executions += 1
        return real(*args, **kwargs)

    async def source() -> AsyncIterator[Any]:
        yield root

    results = []
    real = Executor.execute_operation
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Executor, "execute_operation", counting)
        for _ in range(2):
            stream: Any = subscribe(
                schema, document, root_value={"e": lambda _info: source()}, executor_class=execution.LiveExecutor
            )
            stream = await stream if isawaitable(stream) else stream
            async for result in stream:
                results.append(result)
    return executions, results


async def test_a_result_is_shared_only_without_errors() -> None:
    shared = execution.share_results(_Event())
    executions, results = await _run_for_two_subscribers(shared, "subscription { e { ok } }")
    assert executions == 1 and results[0] is results[1] and results[0].data == {"e": {"ok": 1}}
    # Errors stay per subscriber: each gets its own execution (and its own masked, logged error).
    failing = execution.share_results(_Event())
    executions, results = await _run_for_two_subscribers(failing, "subscription { e { ok boom } }")
    assert executions == 2 and all(r.errors for r in results)
    # A root nobody marked is executed for each subscriber.
    executions, _ = await _run_for_two_subscribers(_Event(), "subscription { e { ok } }")
    assert executions == 2


def test_operations_share_one_copy_of_each_query_text() -> None:
    from graph.websocket import _QUERY_TEXTS, QueryTexts

    def start(query: str, kind: str = "subscribe") -> dict[str, Any]:
        return {"id": "1", "type": kind, "payload": {"query": query}}

    operations = QueryTexts()
    first, second = start("subscription { a }"), start("".join(["subscription ", "{ a }"]), "start")
    assert first["payload"]["query"] is not second["payload"]["query"]
    operations.share(first)
    operations.share(second)
    assert first["payload"]["query"] is second["payload"]["query"]
    for i in range(_QUERY_TEXTS + 10):  # bounded: distinct texts never grow it past the limit
        operations.share(start(f"query q{i} {{ a }}"))
    assert len(operations._texts) <= _QUERY_TEXTS
    operations.share({"type": "subscribe", "payload": {"variables": {}}})  # no query: left alone
    operations.share({"type": "next", "payload": {"query": "not an operation"}})
    assert "not an operation" not in operations._texts
    operations.share(None)


async def test_executing_with_safelights_executor_gives_graphql_cores_results_and_errors() -> None:
    """`LiveExecutor` on unmarked roots is graphql-core's execution: same results, same errors."""
    from graphql import build_schema, execute, parse

    document = parse("query S($n: Int!) { e(n: $n) { ok boom } } query T { e(n: 7) { ok } }")
    schema = build_schema("type Query { e(n: Int!): E } type E { ok: Int boom: Int }")

    def root(value: int) -> dict[str, Any]:
        def boom(_info: Any) -> int:
            raise RuntimeError(f"boom {value}")

        return {"e": lambda _info, n: {"ok": n * value, "boom": boom if value % 2 else value}}

    for value in (1, 2, 3):
        for operation, variables in (("S", {"n": 5}), ("S", {"n": 6}), ("T", {}), ("S", {"n": "x"})):
            ours = execute(
                schema, document, root(value), None, variables, operation, executor_class=execution.LiveExecutor
            )
            theirs = execute(schema, document, root(value), None, variables, operation)
            assert not isawaitable(ours) and not isawaitable(theirs)
            assert ours.data == theirs.data
            assert [(e.message, e.path) for e in ours.errors or []] == [
                (e.message, e.path) for e in theirs.errors or []
            ]


async def test_a_long_subscription_keeps_nothing_per_event() -> None:
    """graphql-core's per-event copies share a memo that grew with every event; ours are built anew."""
    import gc

    from graphql import build_schema, parse, subscribe

    schema = build_schema("type Query { a: Int } type Subscription { e: E } type E { ok: Int f: F } type F { x: Int }")
    document = parse("subscription { e { ok f { x } } }")
    counts: list[int] = []

    async def source() -> AsyncIterator[Any]:
        for i in range(1_100):
            if i in (100, 1_100 - 1):
                gc.collect()
                counts.append(len(gc.get_objects()))
            yield {"e": {"ok": i, "f": {"x": i}}}

    root = {"e": lambda _info: source()}
    stream: Any = subscribe(schema, document, root_value=root, executor_class=execution.LiveExecutor)
    stream = await stream if isawaitable(stream) else stream
    received, last = 0, None
    async for result in stream:  # nothing of a result is kept here but the last
        received, last = received + 1, result
    assert received == 1_100 and last is not None and last.data == {"e": {"ok": 1_099, "f": {"x": 1_099}}}
    assert counts[1] - counts[0] < 500, counts  # graphql-core's own copies: ~20 objects more per event
