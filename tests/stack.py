"""Test support for the whole stack: an in-loop uvicorn, a GraphQL client over HTTP and websockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import websockets
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp

from comfy.fake.server import serve_in_loop
from db.users import create_token, ensure_user
from settings import Settings

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


def serve(app: ASGIApp) -> AbstractAsyncContextManager[str]:
    """Serve an ASGI app on a free loopback port in this event loop; yields its base URL."""
    return serve_in_loop(app)


class GraphQLClient:
    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url
        self.token = token
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30)

    async def aclose(self) -> None:
        await self.http.aclose()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The whole response: {"data": ..., "errors": ...}."""
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=self._headers()
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        result = await self.execute(query, variables)
        assert not result.get("errors"), result["errors"]
        data: dict[str, Any] = result["data"]
        return data

    @asynccontextmanager
    async def subscription(
        self, query: str, variables: dict[str, Any] | None = None, *, protocol: str = TRANSPORT_WS
    ) -> AsyncIterator[Subscription]:
        url = "ws" + self.base_url.removeprefix("http") + "/graphql"
        async with websockets.connect(url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
            init: dict[str, Any] = {"type": "connection_init"}
            if self.token:
                init["payload"] = {"authorization": f"Bearer {self.token}"}
            await ws.send(json.dumps(init))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert ack["type"] == "connection_ack", ack
            start = "subscribe" if protocol == TRANSPORT_WS else "start"
            await ws.send(
                json.dumps({"id": "1", "type": start, "payload": {"query": query, "variables": variables or {}}})
            )
            yield Subscription(ws, protocol)


ENDED = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


async def ended(client: GraphQLClient, query: str, generation_id: str, *, within_s: float = 60.0) -> dict[str, Any]:
    """The generation as `query` (`generation(id: $id)`, selecting its status) answers once it has ended."""
    async with asyncio.timeout(within_s):
        while True:
            generation: dict[str, Any] = (await client.query(query, {"id": generation_id}))["generation"]
            if generation["status"] in ENDED:
                return generation
            await asyncio.sleep(0.05)


async def new_user_client(
    base_url: str, sessions: async_sessionmaker[AsyncSession], *, admin: bool = False
) -> GraphQLClient:
    """A client of a user made for the caller alone (a fresh name and token), so no test shares its quota."""
    async with sessions() as session:
        user = await ensure_user(session, name=f"user-{uuid.uuid4().hex[:8]}", is_admin=admin)
        token = await create_token(session, user_id=user.id, name="test")
        await session.commit()
    return GraphQLClient(base_url, token)


class Subscription:
    def __init__(self, ws: Any, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self.completed = False

    async def next(self, wait_s: float = 15.0) -> dict[str, Any] | None:
        """The next result's data; None once the server completed the subscription."""
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), wait_s))
            kind = message["type"]
            if kind in ("next", "data"):
                payload = message["payload"]
                assert not payload.get("errors"), payload["errors"]
                data: dict[str, Any] = payload["data"]
                return data
            if kind == "complete":
                self.completed = True
                return None
            if kind in ("error", "connection_error"):
                raise AssertionError(f"subscription error: {message}")
            # ka / pong / ping: keep reading

    async def collect(self, wait_s: float = 30.0) -> list[dict[str, Any]]:
        """Every result until the server completes the subscription."""
        out = []
        async with asyncio.timeout(wait_s):
            while (data := await self.next(wait_s)) is not None:
                out.append(data)
        return out


EVENT_FIELDS = """
    generationId seq kind terminal status attempt
    error { code message retryable node }
    progress { phase percent node step maxSteps queuePosition emittedAt }
    image { index url thumbnailUrl width height sizeBytes contentHash seedValue }
    previewUrl
    generation { id status attempt progress { percent phase } images { url } }
"""

GENERATION_EVENTS = f"""
subscription($id: ID!, $after: Int) {{ generationEvents(id: $id, after: $after) {{ {EVENT_FIELDS} }} }}
"""

CREATE = """
mutation($input: GenerationInput!, $key: String) {
  createGeneration(input: $input, idempotencyKey: $key) {
    __typename
    ... on GenerationPayload { created generation { id status seedUsed attempt lastSeq parameters } }
    ... on ValidationError { message errors { field message } }
    ... on QuotaExceededError { message limit }
    ... on BackendUnavailableError { message }
    ... on NotAllowedError { message }
  }
}
"""


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[Any]:
    """One in-process arq worker on `settings` for the block; closed (and its task awaited) after."""
    from jobs.worker.app import build_worker

    worker = build_worker(settings, handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    try:
        yield worker
    finally:
        await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await task
