"""createGeneration while the API cannot reach Redis (a TCP proxy cut for this test's API only).

The request is accepted: the generation is committed in PostgreSQL, so it is durable; its enqueue
(and the QUEUED event) is lost with Redis, and a worker's recovery enqueues a QUEUED generation
without a job once it has waited `queued_grace_s`. The per-minute rate limit (a Redis counter) is
not counted during the outage; the active limit, counted in PostgreSQL, still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.proxy import CuttableProxy, cuttable_proxy
from comfy.fake.server import FakeHandle
from db.models import Generation
from db.states import Status
from db.users import create_token, ensure_user
from graph.app import create_app
from jobs.worker.app import build_worker
from settings import Settings
from tests.stack import CREATE, GraphQLClient, serve

pytestmark = pytest.mark.slow


@pytest.fixture
async def redis_proxy(redis_url: str) -> AsyncIterator[CuttableProxy]:
    target = urlparse(redis_url)
    async with cuttable_proxy(target.hostname or "127.0.0.1", target.port or 6379) as proxy:
        yield proxy


async def _status(sessions: async_sessionmaker[AsyncSession], gid: str) -> Status | None:
    async with sessions() as session:
        stmt = select(Generation.status).where(Generation.id == uuid.UUID(gid))
        return (await session.execute(stmt)).scalar_one_or_none()


async def test_a_create_during_a_redis_outage_is_accepted_and_run_once_recovery_enqueues_it(
    redis_proxy: CuttableProxy,
    stack_settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    fake: FakeHandle,
) -> None:
    direct = stack_settings.model_copy(
        update={"namespace": f"rdown-{uuid.uuid4().hex[:8]}", "worker_heartbeat_s": 0.5, "catalog_ttl_s": 0.2}
    )
    proxied = direct.model_copy(update={"redis_url": redis_proxy.url(str(stack_settings.redis_url))})
    async with session_factory() as session:
        user = await ensure_user(session, name=f"rdown-{uuid.uuid4().hex[:8]}")
        token = await create_token(session, user_id=user.id)
        await session.commit()
    request = {"input": {"prompt": "redis is away", "width": 64, "height": 64, "steps": 1}}
    worker = build_worker(direct, handle_signals=False)  # the workers still reach Redis: only the API lost it
    worker_task = asyncio.create_task(worker.async_run())
    try:
        async with serve(create_app(proxied)) as url:
            client = GraphQLClient(url, token)
            try:
                warm = (await client.query(CREATE, request))["createGeneration"]
                assert warm["__typename"] == "GenerationPayload", warm
                await redis_proxy.cut()
                await asyncio.sleep(0.3)  # the catalogue (and the backend list it reads from Redis) is stale now
                created = (await client.query(CREATE, request))["createGeneration"]
            finally:
                await client.aclose()
        assert created["__typename"] == "GenerationPayload", created
        assert created["created"] and created["generation"]["status"] == "QUEUED"
        gid = created["generation"]["id"]
        assert await _status(session_factory, gid) is Status.QUEUED, "the request is durable: committed"
        async with asyncio.timeout(120):  # recovery enqueues it after its 30 s grace; the worker runs it
            while True:
                if await _status(session_factory, gid) is Status.SUCCEEDED:
                    break
                await asyncio.sleep(0.2)
    finally:
        await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await worker_task
