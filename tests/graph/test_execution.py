"""Subscription execution (graph/execution.py): no tasks per event or idle subscription; one execution per event."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from inspect import isawaitable
from typing import Any

import pytest
import strawberry
import strawberry.schema.schema as strawberry_schema
import websockets
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


def test_strawberry_subscribes_through_safelight() -> None:
    """If strawberry stops looking `subscribe` up in its schema module, the fast path is silently gone."""
    from graph.schema import build_schema

    build_schema()
    assert strawberry_schema.subscribe is execution.subscribe


async def test_idle_subscriptions_hold_no_task_of_their_own(make_client: MakeClient, api_url: str) -> None:
    """One task per operation (strawberry's), none for mapping its events (graphql-core 3.2 kept two)."""
    client = await make_client()
    url = "ws" + api_url.removeprefix("http") + "/graphql"
    operations = 30
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {client.token}"}}))
        await ws.recv()
        await asyncio.sleep(0.1)
        before = len(asyncio.all_tasks())
        baseline = await _settle(api_url, -1, within=0.05)  # just a reading
        for i in range(operations):
            await ws.send(json.dumps({"id": str(i), "type": "subscribe", "payload": {"query": WATCH}}))
        assert await _settle(api_url, baseline + operations) == baseline + operations
        await asyncio.sleep(0.1)
        added = len(asyncio.all_tasks()) - before
    assert operations <= added <= operations + 2, added


async def test_subscribers_of_one_event_share_one_execution(
    make_client: MakeClient, api_url: str, redis: Redis, stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    executions = 0
    real_execute = execution._execute

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal executions
        executions += 1
        return real_execute(*args, **kwargs)

    monkeypatch.setattr(execution, "_execute", counting)
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
    from graphql import build_schema, parse

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
    real = execution._execute
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(execution, "_execute", counting)
        for _ in range(2):
            async for result in execution._responses(source(), schema, document, None, {}, None, None):
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

    operations = QueryTexts()
    first, second = {"query": "subscription { a }"}, {"query": "".join(["subscription ", "{ a }"])}
    assert first["query"] is not second["query"]
    operations.share(first)
    operations.share(second)
    assert first["query"] is second["query"]
    for i in range(_QUERY_TEXTS + 10):  # bounded: distinct texts never grow it past the limit
        operations.share({"query": f"query q{i} {{ a }}"})
    assert len(operations._texts) <= _QUERY_TEXTS
    operations.share({"variables": {}})  # no query: left alone
    operations.share(None)


async def test_per_event_execution_matches_graphql_core() -> None:
    """`_execute` reuses one built context per (document, operation, variables): same results, same errors."""
    from graphql import build_schema, execute, parse

    schema = build_schema("type Query { a: Int } type Subscription { e(n: Int!): E } type E { ok: Int boom: Int }")
    document = parse("subscription S($n: Int!) { e(n: $n) { ok boom } } subscription T { e(n: 7) { ok } }")

    def event(value: int) -> dict[str, Any]:
        def boom(_info: Any) -> int:
            raise RuntimeError(f"boom {value}")

        return {"e": lambda _info, n: {"ok": n * value, "boom": boom if value % 2 else value}}

    for value in (1, 2, 3):
        for operation, variables in (("S", {"n": 5}), ("S", {"n": 6}), ("T", {})):
            ours = execution._execute(schema, document, event(value), None, variables, operation, None)
            theirs = execute(schema, document, event(value), None, variables, operation)
            assert not isawaitable(ours) and not isawaitable(theirs)
            assert ours.data == theirs.data
            assert [(e.message, e.path) for e in ours.errors or []] == [
                (e.message, e.path) for e in theirs.errors or []
            ]
    # variables that do not fit the operation are reported as graphql-core reports them
    bad = execution._execute(schema, document, event(1), None, {"n": "x"}, "S", None)
    assert not isawaitable(bad) and bad.data is None and bad.errors and "Int cannot represent" in bad.errors[0].message


async def _with_sender(source: Any, schema: Any, document: Any, *, accept: bool) -> tuple[list[Any], list[Any]]:
    """Map `source` with a `SEND_RESULT` sender that takes results while `accept`: (yielded, sent)."""
    sent: list[Any] = []

    class Sender:
        async def send(self, result: Any) -> bool:
            sent.append(result)
            return accept

    token = execution.SEND_RESULT.set(Sender())
    try:
        yielded = [r async for r in execution._responses(source, schema, document, None, {}, None, None)]
    finally:
        execution.SEND_RESULT.reset(token)
    return yielded, sent


async def test_live_results_without_errors_go_straight_to_the_socket() -> None:
    """After the first result, error-free results take `SEND_RESULT`; False from it ends the stream."""
    from graphql import build_schema, parse

    schema = build_schema("type Query { a: Int } type Subscription { e: E } type E { ok: Int boom: Int }")
    document = parse("subscription { e { ok } }")

    async def source() -> AsyncIterator[Any]:
        for _ in range(4):
            yield _Event()

    yielded, sent = await _with_sender(source(), schema, document, accept=True)
    assert [r.data for r in yielded] == [{"e": {"ok": 1}}]  # the first: strawberry checks it
    assert [r.data for r in sent] == [{"e": {"ok": 1}}] * 3
    # A connection that is gone ends the subscription at the first result it could not take.
    yielded, sent = await _with_sender(source(), schema, document, accept=False)
    assert len(yielded) == 1 and len(sent) == 1
    # Without SEND_RESULT (HTTP, or no handler of ours), every result is yielded.
    assert len([r async for r in execution._responses(source(), schema, document, None, {}, None, None)]) == 4


async def test_a_live_result_with_errors_is_yielded_to_strawberry() -> None:
    from graphql import build_schema, parse

    schema = build_schema("type Query { a: Int } type Subscription { e: E } type E { ok: Int boom: Int }")
    document = parse("subscription { e { ok boom } }")

    class Sometimes(_Event):
        def __init__(self, fail: bool) -> None:
            super().__init__()
            self.fail = fail

        @property
        def boom(self) -> int:
            if self.fail:
                raise RuntimeError("boom")
            return 2

    async def source() -> AsyncIterator[Any]:
        for fail in (False, False, True, False):
            yield Sometimes(fail)

    yielded, sent = await _with_sender(source(), schema, document, accept=True)
    assert [bool(r.errors) for r in yielded] == [False, True]  # the first, and the one with an error
    assert [r.data for r in sent] == [{"e": {"ok": 1, "boom": 2}}] * 2


def test_plain_fields_read_directly_give_graphql_cores_results_and_errors() -> None:
    """`_LiveExecution` reads strawberry's plain attribute fields itself: same data, same errors."""
    from graphql import ExecutionContext, GraphQLError, parse

    from graph.schema import build_schema
    from graph.subscriptions import to_event
    from graph.types import GenerationEvent
    from tests.stack import EVENT_FIELDS

    schema = build_schema()._schema
    owner, gid, now = uuid.uuid4(), uuid.uuid4(), time.time()
    image = {
        "index": 0, "contentHash": "ab" * 32, "width": 64, "height": 64, "seed": 7, "sizeBytes": 10, "mime": "image/png"
    }  # fmt: skip
    error = {"code": "EXECUTION_ERROR", "message": "boom", "retryable": False, "node": "3 (KSampler)"}
    events: list[Any] = [
        to_event(BusEvent(gid, owner, 4, kind, payload, now), base_url="http://x")
        for kind, payload in [
            (EventKind.STATUS, {"status": "RUNNING", "attempt": 1}),
            (EventKind.STATUS, {"status": "FAILED", "attempt": 2, "error": error}),
            (EventKind.PROGRESS, {"phase": "EXECUTING", "percent": 42.5, "step": 3, "maxSteps": 9, "node": "3"}),
            (EventKind.PROGRESS, {"phase": "BACKEND_QUEUE", "percent": 0.0, "queuePosition": 2}),
            (EventKind.IMAGE, image),
            (EventKind.PREVIEW, {"token": "t" * 16, "mime": "image/jpeg"}),
            (EventKind.DELETED, {}),
        ]
    ]
    # Values the schema does not allow: a null non-null field, a value an enum cannot serialize.
    broken = GenerationEvent(generation_id=strawberry.ID(str(gid)), seq=None, kind="nope", at=now, terminal=False)  # type: ignore[arg-type]
    broken_leaf = GenerationEvent(generation_id=strawberry.ID(str(gid)), seq=1, kind="nope", at=now, terminal=False)  # type: ignore[arg-type]
    fields = EVENT_FIELDS.replace("generation {", "generation @skip(if: $skip) {")
    documents = [
        f"subscription($id: ID!, $skip: Boolean = true) {{ generationEvents(id: $id) {{ {fields} }} }}",
        "subscription($id: ID!) { generationEvents(id: $id) { __typename s: seq ...F progress { ... on Progress "
        "{ percent } phase } image { u: url seedValue } } } fragment F on GenerationEvent { kind at terminal }",
        "subscription { myGenerationEvents { generationId seq kind status terminal error { code } } }",
    ]
    for text in documents:
        document = parse(text)
        for root in [*events, broken, broken_leaf]:
            results = []
            for context_class in (execution._LiveExecution, ExecutionContext):
                built = context_class.build(schema, document, root, None, {"id": str(gid)})
                assert not isinstance(built, list), built
                try:
                    data = built.execute_operation(built.operation, root)
                except GraphQLError as error:  # as execute(): a null that reached the root
                    data, _ = None, built.collected_errors.add(error, None)
                results.append((data, [(e.message, e.path) for e in built.collected_errors.errors]))
            assert results[0] == results[1], (text, root, results)
