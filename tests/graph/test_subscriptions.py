"""Subscription transport: abrupt disconnects release every listener; quiet subscribers check the log."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import websockets

from tests.stack import GraphQLClient

MakeClient = Callable[..., Awaitable[GraphQLClient]]


async def _listeners(api_url: str) -> int:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{api_url}/metrics")).text
    match = re.search(r"^safelight_subscribers (\S+)$", text, re.MULTILINE)
    assert match is not None
    return int(float(match.group(1)))


async def _settle(api_url: str, expected: int, *, within: float = 30.0) -> int:
    """Poll the listener gauge until it reads `expected` (or time runs out); the last reading."""
    count = -1
    for _ in range(int(within / 0.05)):
        count = await _listeners(api_url)
        if count == expected:
            break
        await asyncio.sleep(0.05)
    return count


async def test_abrupt_disconnects_release_every_listener(make_client: MakeClient, api_url: str) -> None:
    """`myGenerationEvents` never completes on its own, so only the disconnect can end it."""
    client = await make_client()
    baseline = await _listeners(api_url)
    url = "ws" + api_url.removeprefix("http") + "/graphql"
    sockets = []
    for protocol in ["graphql-transport-ws", "graphql-ws"] * 10:
        ws = await websockets.connect(url, subprotocols=[protocol])  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {client.token}"}}))
        await ws.recv()
        start = "subscribe" if protocol == "graphql-transport-ws" else "start"
        for i in range(3):  # several operations on one socket
            payload = {"query": "subscription { myGenerationEvents { seq kind } }"}
            await ws.send(json.dumps({"id": str(i), "type": start, "payload": payload}))
        sockets.append(ws)
    assert await _settle(api_url, baseline + 20 * 3) == baseline + 20 * 3
    for ws in sockets:
        ws.transport.abort()  # no close frame: the peer just vanishes
    assert await _settle(api_url, baseline) == baseline


async def test_a_status_that_was_never_published_reaches_a_quiet_subscriber(
    make_client: MakeClient, session_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bus lost nothing here: the CANCELLED is committed but never published (a worker that could not
    reach Redis). The subscriber finds it when, quiet for a while, it checks the log."""
    from db.states import Status
    from db.transitions import create_generation, transition
    from graph import subscriptions

    monkeypatch.setattr(subscriptions, "QUIET_CHECK_S", 0.5)
    client = await make_client()
    viewer = (await client.query("{ viewer { id } }"))["viewer"]["id"]
    async with session_factory() as session:  # straight to the database: no job, no publish
        change, _ = await create_generation(
            session, owner_id=uuid.UUID(viewer), template="txt2img", params={}, prompt="lost", seed=1
        )
        await session.commit()
    gid = change.generation.id
    async with client.subscription("subscription($id: ID!) { generationEvents(id: $id) { kind status } }",
                                   {"id": str(gid)}) as sub:  # fmt: skip
        assert await sub.next() == {"generationEvents": {"kind": "SNAPSHOT", "status": "QUEUED"}}
        async with session_factory() as session:
            await transition(session, generation_id=gid, to=Status.CANCELLED)
            await session.commit()
        assert await sub.next(wait_s=10) == {"generationEvents": {"kind": "STATUS", "status": "CANCELLED"}}
        assert await sub.next() is None  # terminal: completed


async def test_quiet_checks_of_one_generation_share_one_read(session_factory: Any) -> None:
    from graph.lastseq import LastSeqReads

    reads = LastSeqReads(session_factory, ttl_s=60)
    missing = uuid.uuid4()
    assert await asyncio.gather(*(reads.get(missing) for _ in range(50))) == [None] * 50
    assert reads.reads == 1
    other = LastSeqReads(session_factory, ttl_s=0)  # every check reads
    for _ in range(3):
        assert await other.get(missing) is None
    assert other.reads == 3
