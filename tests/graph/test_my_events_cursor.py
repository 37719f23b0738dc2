"""`myGenerationEvents(after:)`: resume after a durable event's cursor, and read back what the bus lost."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.proxy import CuttableProxy, cuttable_proxy
from comfy.fake.server import FakeHandle
from db.events import events_after
from db.models import Generation
from db.users import create_token, ensure_user
from graph.app import create_app
from graph.subscriptions import encode_event_cursor
from jobs.bus import BusEvent
from jobs.worker.app import build_worker
from settings import Settings
from tests.stack import CREATE, GraphQLClient, Subscription, serve

pytestmark = pytest.mark.slow

MY_EVENTS = """
subscription($after: String) { myGenerationEvents(after: $after) {
  generationId seq kind status terminal cursor progress { step }
} }
"""


@pytest.fixture
async def redis_proxy(redis_url: str) -> AsyncIterator[CuttableProxy]:
    target = urlparse(redis_url)
    async with cuttable_proxy(target.hostname or "127.0.0.1", target.port or 6379) as proxy:
        yield proxy


@pytest.fixture
async def stack(
    redis_proxy: CuttableProxy, stack_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[tuple[GraphQLClient, uuid.UUID]]:
    """API and worker on a namespace of their own, both reaching Redis through the proxy."""
    settings = stack_settings.model_copy(
        update={
            "redis_url": redis_proxy.url(str(stack_settings.redis_url)),
            "namespace": f"feed-{uuid.uuid4().hex[:8]}",
        }
    )
    async with session_factory() as session:
        user = await ensure_user(session, name=f"feed-{uuid.uuid4().hex[:8]}")
        token = await create_token(session, user_id=user.id)
        await session.commit()
    worker = build_worker(settings, handle_signals=False)
    worker_task = asyncio.create_task(worker.async_run())
    try:
        async with serve(create_app(settings)) as url:
            client = GraphQLClient(url, token)
            try:
                yield client, user.id
            finally:
                await client.aclose()
    finally:
        await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await worker_task


async def _create(client: GraphQLClient, steps: int = 2) -> uuid.UUID:
    data = await client.query(CREATE, {"input": {"prompt": "feed", "width": 64, "height": 64, "steps": steps}})
    return uuid.UUID(data["createGeneration"]["generation"]["id"])


async def _status(sessions: async_sessionmaker[AsyncSession], gid: uuid.UUID) -> str:
    async with sessions() as session:
        status = (await session.execute(select(Generation.status).where(Generation.id == gid))).scalar_one()
        return str(status.value)


async def _until_terminal(sessions: async_sessionmaker[AsyncSession], gid: uuid.UUID) -> None:
    async with asyncio.timeout(60):
        while True:
            if await _status(sessions, gid) in ("SUCCEEDED", "FAILED", "CANCELLED"):
                return
            await asyncio.sleep(0.05)


async def _cursors(sessions: async_sessionmaker[AsyncSession], gid: uuid.UUID, owner: uuid.UUID) -> list[str]:
    async with sessions() as session:
        rows = await events_after(session, generation_id=gid, after_seq=0)
    cursors = [encode_event_cursor(BusEvent.from_row(row, owner_id=owner)) for row in rows]
    return [c for c in cursors if c is not None]


async def _events_of(sub: Subscription, gid: uuid.UUID, *, until_terminal: bool = True) -> list[dict[str, Any]]:
    out = []
    while True:
        data = await sub.next(60)
        assert data is not None, "myGenerationEvents never completes"
        event = data["myGenerationEvents"]
        if event["generationId"] != str(gid):
            continue
        out.append(event)
        if event["terminal"] or not until_terminal:
            return out


async def test_after_a_cursor_every_later_durable_event_is_replayed_then_live_ones_follow(
    stack: tuple[GraphQLClient, uuid.UUID], session_factory: async_sessionmaker[AsyncSession], fake: FakeHandle
) -> None:
    client, owner = stack
    first = await _create(client)
    await _until_terminal(session_factory, first)
    cursors = await _cursors(session_factory, first, owner)
    assert len(cursors) >= 3  # QUEUED, RUNNING, IMAGE, SUCCEEDED

    async with client.subscription(MY_EVENTS, {"after": cursors[0]}) as sub:
        replayed = await _events_of(sub, first)
        assert [e["seq"] for e in replayed] == list(range(2, len(cursors) + 1)), "everything after the cursor, once"
        assert [e["cursor"] for e in replayed] == cursors[1:]
        assert replayed[-1]["status"] == "SUCCEEDED"
        second = await _create(client)  # the replay is done: live events follow
        live = [e for e in await _events_of(sub, second) if e["kind"] in ("STATUS", "IMAGE")]
        assert [e["seq"] for e in live] == list(range(1, len(live) + 1))

    async with client.subscription(MY_EVENTS, {"after": cursors[-1]}) as sub:
        third = await _create(client)
        events = await _events_of(sub, third)  # nothing of `first` again: its last event was the cursor
        assert events[-1]["status"] == "SUCCEEDED"

    async with client.subscription(MY_EVENTS, {"after": "nope"}) as sub:
        with pytest.raises(AssertionError, match="malformed cursor"):
            await sub.next(10)


async def test_events_published_while_the_bus_is_down_are_delivered_after(
    stack: tuple[GraphQLClient, uuid.UUID],
    redis_proxy: CuttableProxy,
    session_factory: async_sessionmaker[AsyncSession],
    fake: FakeHandle,
) -> None:
    client, owner = stack
    warm = await _create(client)
    await _until_terminal(session_factory, warm)
    cursors = await _cursors(session_factory, warm, owner)
    fake.config.step_time = 0.05
    async with client.subscription(MY_EVENTS, {"after": cursors[-2]}) as sub:
        await _events_of(sub, warm)  # the replay came: the subscription is live
        gid = await _create(client, steps=40)
        while True:  # it runs on ComfyUI
            (event,) = await _events_of(sub, gid, until_terminal=False)
            if (event["progress"] or {}).get("step"):
                break
        await redis_proxy.cut()
        try:
            await _until_terminal(session_factory, gid)  # its end is published to nobody
        finally:
            await redis_proxy.restore()
        events = await _events_of(sub, gid)
    assert events[-1]["status"] == "SUCCEEDED"
    assert events[-1]["kind"] == "STATUS"
