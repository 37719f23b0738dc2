"""Subscription transport: abrupt disconnects release every listener."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable

import httpx
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
