"""Subscriptions on graphql-transport-ws run on graphql-core directly (graph/websocket.py): every message a
client receives is the one strawberry's own pipeline sends, errors masked and logged the same way."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.generations import create_generation
from graph import subscriptions
from graph.schema import SafelightSchema
from tests.graph.test_api import PRIVATE, fail_privately, logged_privately
from tests.stack import GENERATION_EVENTS, GraphQLClient

MakeClient = Callable[..., Awaitable[GraphQLClient]]

_ERROR_ID = re.compile(r'"errorId":\s*"[0-9a-f]{12}"')


async def _messages(client: GraphQLClient, query: str, variables: dict[str, Any], *, until_first: bool) -> list[str]:
    """The raw messages for one subscription (errorIds normalised), up to its end or its first `next`."""
    url = "ws" + client.base_url.removeprefix("http") + "/graphql"
    out: list[str] = []
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {client.token}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "s", "type": "subscribe", "payload": {"query": query, "variables": variables}}))
        async with asyncio.timeout(10):
            while True:
                try:
                    raw = await ws.recv()
                except websockets.ConnectionClosed as closed:  # a syntax error closes the socket (4400)
                    frame = closed.rcvd
                    out.append(f"closed {frame.code} {frame.reason}" if frame else "closed")
                    return out
                assert isinstance(raw, str)
                out.append(_ERROR_ID.sub('"errorId": "-"', raw))
                kind = json.loads(raw)["type"]
                if kind in ("complete", "error") or (kind == "next" and until_first):
                    return out


async def _both_paths(
    client: GraphQLClient, query: str, variables: dict[str, Any], *, until_first: bool = False
) -> tuple[list[str], list[str]]:
    lean = await _messages(client, query, variables, until_first=until_first)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SafelightSchema, "subscription_document", lambda *_: None)  # strawberry's own path
        theirs = await _messages(client, query, variables, until_first=until_first)
    return lean, theirs


async def test_a_subscription_sends_what_strawberry_would(
    make_client: MakeClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    client = await make_client()
    viewer = uuid.UUID((await client.query("{ viewer { id } }"))["viewer"]["id"])
    async with session_factory() as session:  # in a namespace no worker serves: it stays as it is
        change, _ = await create_generation(
            session, owner_id=viewer, template="txt2img", params={"prompt": "p"}, prompt="p", seed=1,
            namespace=f"parity-{uuid.uuid4().hex[:8]}",
        )  # fmt: skip
        await session.commit()
    gid = str(change.generation.id)
    lean, theirs = await _both_paths(client, GENERATION_EVENTS, {"id": gid}, until_first=True)
    assert lean == theirs and '"kind":"SNAPSHOT"' in lean[0].replace(" ", ""), (lean, theirs)


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (GENERATION_EVENTS, {"id": "00000000-0000-4000-8000-000000000000"}),  # no such generation
        (GENERATION_EVENTS, {"id": "not-an-id"}),  # a malformed id
        (GENERATION_EVENTS, {}),  # a required variable missing
        (GENERATION_EVENTS, {"id": "00000000-0000-4000-8000-000000000000", "after": "x"}),  # a variable's type
        ("subscription { generationEvents(id: 1) { nope } }", {}),  # does not validate: strawberry's path
        ("subscription { generationEvents(id: ", {}),  # does not parse: strawberry's path
        ("query { viewer { id } }", {}),  # not a subscription: strawberry's path
    ],
)
async def test_a_refused_subscription_gets_the_error_strawberry_would_send(
    make_client: MakeClient, query: str, variables: dict[str, Any]
) -> None:
    client = await make_client()
    lean, theirs = await _both_paths(client, query, variables)
    assert lean == theirs, (lean, theirs)


async def test_an_unexpected_failure_is_masked_and_logged_as_strawberry_would(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client()
    monkeypatch.setattr(subscriptions.gens, "get_generation", fail_privately)
    variables = {"id": "00000000-0000-4000-8000-000000000000"}
    with caplog.at_level("ERROR"):
        lean = await _messages(client, GENERATION_EVENTS, variables, until_first=False)
        logged_lean = logged_privately(caplog)
        caplog.clear()
        monkeypatch.setattr(SafelightSchema, "subscription_document", lambda *_: None)  # strawberry's own path
        theirs = await _messages(client, GENERATION_EVENTS, variables, until_first=False)
        logged_theirs = logged_privately(caplog)
    assert lean == theirs, (lean, theirs)
    assert PRIVATE not in "".join(lean) and "Unexpected error" in "".join(lean)
    assert len(logged_lean) == len(logged_theirs) >= 1


def test_only_valid_subscription_operations_take_the_lean_path() -> None:
    from graph.schema import build_schema

    schema = build_schema(max_depth=3)
    assert schema.subscription_document(GENERATION_EVENTS, None) is not None
    two = (
        GENERATION_EVENTS.replace("subscription(", "subscription A(") + "subscription B { myGenerationEvents { seq } }"
    )
    assert schema.subscription_document(two, "B") is not None
    assert schema.subscription_document(two, None) is None  # which one? strawberry says
    assert schema.subscription_document("query { viewer { id } }", None) is None
    assert schema.subscription_document("subscription { generationEvents(id: 1) { nope } }", None) is None
    assert schema.subscription_document("subscription {", None) is None
    deep = "subscription { generationEvents(id: 1) { generation { progress { phase } } } }"
    assert schema.subscription_document(deep, None) is not None  # depth 3 is allowed
    deeper = "subscription { generationEvents(id: 1) { generation { images { url } owner { name } error { code } } } }"
    assert build_schema(max_depth=2).subscription_document(deeper, None) is None  # the depth limit applies


async def test_a_failed_send_is_the_connections_not_reported_as_the_operations_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from graphql import ExecutionResult
    from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import WebSocketDisconnected

    from graph import websocket
    from graph.schema import build_schema

    async def events(*_: Any) -> Any:
        async def gen() -> Any:
            yield ExecutionResult({"e": 1}, None)
            yield ExecutionResult({"e": 2}, None)

        return gen()

    class Gone:
        id, variables, operation_name = "1", {}, None

        async def send_next(self, result: Any) -> None:
            raise WebSocketDisconnected

    schema = build_schema()
    reported: list[Any] = []
    monkeypatch.setattr(websocket, "subscribe", events)
    monkeypatch.setattr(schema, "report", lambda errors: reported.append(errors) or errors)
    handler: Any = websocket.TransportWSHandler.__new__(websocket.TransportWSHandler)
    handler.root_value, handler.context = None, None
    with pytest.raises(WebSocketDisconnected):
        await handler._stream(Gone(), schema, None)
    assert reported == []
