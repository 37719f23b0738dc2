"""graph/ws_protocol.py: both websocket protocols' rules, as a client of each sees them (close codes, the order
and form of messages, queries over the socket), beyond what test_guards.py and test_websocket.py cover."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import websockets

from tests.stack import LEGACY_WS, TRANSPORT_WS, GraphQLClient

MakeClient = Callable[..., Awaitable[GraphQLClient]]
WATCH = "subscription { myGenerationEvents { seq } }"


def _url(client: GraphQLClient) -> str:
    return "ws" + client.base_url.removeprefix("http") + "/graphql"


def _init(client: GraphQLClient) -> str:
    return json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {client.token}"}})


async def _recv(ws: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return message


async def _closed(ws: Any) -> tuple[int, str]:
    try:
        async with asyncio.timeout(10):
            while True:
                await ws.recv()
    except websockets.ConnectionClosed as closed:
        return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd is not None else (-1, "")


async def _acknowledged(client: GraphQLClient, protocol: str) -> Any:
    ws = await websockets.connect(_url(client), subprotocols=[protocol])  # type: ignore[list-item]
    await ws.send(_init(client))
    assert (await _recv(ws))["type"] == "connection_ack"
    return ws


@pytest.mark.parametrize(
    ("before_ack", "messages", "closed"),
    [
        (True, [{"id": "1", "type": "subscribe", "payload": {"query": WATCH}}], (4401, "Unauthorized")),
        (False, [{"type": "connection_init", "payload": {}}], (4429, "Too many initialisation requests")),
        (
            False,
            [{"id": "1", "type": "subscribe", "payload": {"query": WATCH}}] * 2,
            (4409, "Subscriber for 1 already exists"),
        ),
        (False, [{"type": "nope"}], (4400, "Unknown message type: nope")),
        (False, [{"id": "1", "type": "subscribe", "payload": {"query": 1}}], (4400, "Failed to parse message")),
        (False, [[1, 2]], (4400, "Failed to parse message")),
    ],
    ids=["subscribe-before-ack", "second-init", "duplicate-id", "unknown-type", "bad-subscribe", "not-an-object"],
)
async def test_graphql_transport_ws_closes_with_the_specs_codes(
    make_client: MakeClient, before_ack: bool, messages: list[Any], closed: tuple[int, str]
) -> None:
    client = await make_client()
    async with websockets.connect(_url(client), subprotocols=[TRANSPORT_WS]) as ws:  # type: ignore[list-item]
        if not before_ack:
            await ws.send(_init(client))
            assert (await _recv(ws))["type"] == "connection_ack"
        for message in messages:
            await ws.send(json.dumps(message))
        assert await _closed(ws) == closed


async def test_a_binary_message_is_invalid(make_client: MakeClient) -> None:
    client = await make_client()
    async with websockets.connect(_url(client), subprotocols=[TRANSPORT_WS]) as ws:  # type: ignore[list-item]
        await ws.send(b"{}")
        assert await _closed(ws) == (4400, "WebSocket message type must be text")


async def test_queries_and_refusals_over_graphql_transport_ws(make_client: MakeClient) -> None:
    client = await make_client()
    ws = await _acknowledged(client, TRANSPORT_WS)
    try:
        await ws.send(json.dumps({"id": "q", "type": "subscribe", "payload": {"query": "{ viewer { name } }"}}))
        answer = await _recv(ws)
        assert answer["type"] == "next" and answer["id"] == "q" and answer["payload"]["data"]["viewer"]["name"]
        assert await _recv(ws) == {"id": "q", "type": "complete"}
        await ws.send(json.dumps({"id": "q", "type": "subscribe", "payload": {"query": "{ nope }"}}))
        refused = await _recv(ws)  # the id is free again once `complete` was sent
        assert refused["type"] == "error" and refused["id"] == "q", refused
        assert "Cannot query field 'nope'" in refused["payload"][0]["message"]
        # A subscription the client completes frees its id at once, and the socket goes on.
        for _ in range(2):
            await ws.send(json.dumps({"id": "s", "type": "subscribe", "payload": {"query": WATCH}}))
            await ws.send(json.dumps({"id": "s", "type": "complete"}))
        await ws.send(json.dumps({"type": "ping"}))
        assert await _recv(ws) == {"type": "pong"}
    finally:
        await ws.close()


async def test_the_legacy_protocol_starts_stops_and_terminates(make_client: MakeClient) -> None:
    client = await make_client()
    ws = await _acknowledged(client, LEGACY_WS)
    try:
        await ws.send(json.dumps({"id": "q", "type": "start", "payload": {"query": "{ viewer { name } }"}}))
        answer = await _recv(ws)
        assert answer["type"] == "data" and answer["id"] == "q" and answer["payload"]["data"]["viewer"]["name"]
        assert await _recv(ws) == {"id": "q", "type": "complete"}
        await ws.send(json.dumps({"id": "q", "type": "start", "payload": {"query": "{ nope }"}}))
        refused = await _recv(ws)
        assert refused["type"] == "error" and "Cannot query field 'nope'" in refused["payload"]["message"], refused
        await ws.send(json.dumps({"id": "s", "type": "start", "payload": {"query": WATCH}}))
        await ws.send("not json")  # ignored by the legacy protocol
        await ws.send(json.dumps({"id": "s", "type": "stop"}))
        assert await _recv(ws) == {"type": "complete", "id": "s"}  # a stopped operation says so
        await ws.send(json.dumps({"type": "connection_terminate"}))
        assert (await _closed(ws))[0] == 1000
    finally:
        await ws.close()


async def test_a_refused_legacy_init_is_a_connection_error(make_client: MakeClient) -> None:
    client = await make_client()
    async with websockets.connect(_url(client), subprotocols=[LEGACY_WS]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": "Bearer wrong"}}))
        error = await _recv(ws)
        assert error["type"] == "connection_error" and "API token" in error["payload"]["message"], error
        assert (await _closed(ws))[0] == 1011


async def test_an_unknown_subprotocol_is_not_acceptable(make_client: MakeClient) -> None:
    client = await make_client()
    async with websockets.connect(_url(client), subprotocols=["graphql-sse"]) as ws:  # type: ignore[list-item]
        assert await _closed(ws) == (4406, "Subprotocol not acceptable")
