"""Subscriptions over graphql-transport-ws, run by strawberry with Safelight's executor and extensions: what a
client receives for a live, a refused and a failing subscription, errors masked and logged."""

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

from db.transitions import create_generation
from graph import subscriptions
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


async def test_a_subscription_starts_with_its_snapshot(
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
    messages = await _messages(client, GENERATION_EVENTS, {"id": gid}, until_first=True)
    first = json.loads(messages[0])
    assert first["type"] == "next" and first["payload"]["data"]["generationEvents"]["kind"] == "SNAPSHOT", messages


@pytest.mark.parametrize(
    ("query", "variables", "refusal"),
    [
        (GENERATION_EVENTS, {"id": "00000000-0000-4000-8000-000000000000"}, "no generation"),  # no such generation
        (GENERATION_EVENTS, {"id": "not-an-id"}, "id"),  # a malformed id
        (GENERATION_EVENTS, {}, "to be provided"),  # a required variable missing
        (GENERATION_EVENTS, {"id": "00000000-0000-4000-8000-000000000000", "after": "x"}, "after"),  # its type
        ("subscription { generationEvents(id: 1) { nope } }", {}, "Cannot query field 'nope'"),  # does not validate
        ("subscription { generationEvents(id: ", {}, "closed 4400 Syntax Error"),  # does not parse: closes
    ],
)
async def test_a_refused_subscription_says_why(
    make_client: MakeClient, query: str, variables: dict[str, Any], refusal: str
) -> None:
    client = await make_client()
    messages = await _messages(client, query, variables, until_first=False)
    last = messages[-1]
    assert refusal.lower() in " ".join(messages).lower(), messages
    assert last.startswith("closed 4400") or json.loads(last)["type"] in ("error", "complete"), messages
    assert not any(m.startswith("{") and json.loads(m)["type"] == "next" and not json.loads(m)["payload"].get("errors")
                   for m in messages), messages  # fmt: skip


async def test_an_unexpected_failure_is_masked_and_logged(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client()
    monkeypatch.setattr(subscriptions.generation_reads, "get_generation", fail_privately)
    variables = {"id": "00000000-0000-4000-8000-000000000000"}
    with caplog.at_level("ERROR"):
        messages = await _messages(client, GENERATION_EVENTS, variables, until_first=False)
        logged = logged_privately(caplog)
    assert PRIVATE not in "".join(messages) and "Unexpected error" in "".join(messages), messages
    assert len(logged) >= 1
