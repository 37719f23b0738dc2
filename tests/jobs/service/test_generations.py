"""What the API asks of the job system, seen through the API: here the per-minute rate limit."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from arq.constants import job_key_prefix
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Generation, GenerationEvent
from db.users import user_by_token
from graph.app import create_app
from jobs.enqueue import job_id_for
from jobs.keys import Keys
from settings import Settings
from tests.stack import CREATE, GraphQLClient, serve

MakeClient = Callable[..., Awaitable[GraphQLClient]]
CANCEL = "mutation($id: ID!) { cancelGeneration(id: $id) { __typename } }"


async def test_the_rate_limit_refuses_with_its_typed_error_and_creates_nothing(
    make_client: MakeClient, stack_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Counted while the INSERT runs: a refused generation is deleted again before anyone heard of it.
    Once this process has seen the owner over the limit, later requests in that minute are
    refused without reaching the database or Redis."""
    settings = stack_settings.model_copy(
        update={"namespace": f"rate-{uuid.uuid4().hex[:8]}", "rate_limit_per_minute": 2}
    )
    keys = Keys(settings.namespace)
    client = await make_client()
    async with session_factory() as session:
        owner = await user_by_token(session, token=client.token or "")
        assert owner is not None
    if time.time() % 60 > 55:  # all four requests in one window of the counter
        await asyncio.sleep(60 - time.time() % 60)
    minute = int(time.time() // 60)
    async with serve(create_app(settings)) as url:
        api = GraphQLClient(url, client.token)
        try:
            results = []
            for index in range(4):
                request = {"prompt": f"rate {index}", "width": 64, "height": 64}
                results.append((await api.query(CREATE, {"input": request}))["createGeneration"])
            accepted = [r["generation"]["id"] for r in results if r["__typename"] == "GenerationPayload"]
            for gid in accepted:  # nothing runs in this namespace: leave nothing queued behind
                assert (await api.query(CANCEL, {"id": gid}))["cancelGeneration"]["__typename"] == "GenerationPayload"
        finally:
            await api.aclose()
    assert [r["__typename"] for r in results] == ["GenerationPayload"] * 2 + ["QuotaExceededError"] * 2
    assert (
        results[2]
        == results[3]
        == {"__typename": "QuotaExceededError", "message": "at most 2 generations per minute", "limit": 2}
    )
    async with session_factory() as session:
        ids = set((await session.execute(select(Generation.id).where(Generation.owner_id == owner.id))).scalars())
        events = await session.scalar(select(func.count()).where(GenerationEvent.generation_id.in_(ids)))
    assert ids == {uuid.UUID(gid) for gid in accepted}
    assert events == 4  # QUEUED and CANCELLED of the two accepted ones
    redis: Redis = Redis.from_url(settings.required_redis_url)
    try:
        assert await redis.zcard(keys.queue) == 2
        assert int(await redis.get(keys.rate(str(owner.id), minute)) or 0) == 3, "the fourth was refused here"
    finally:
        jobs = [job_key_prefix + job_id_for(uuid.UUID(gid), 1) for gid in accepted]
        await redis.delete(keys.queue, keys.rate(str(owner.id), minute), *jobs)
        await redis.aclose()


async def test_a_create_the_active_limit_refuses_gives_its_rate_count_back(
    make_client: MakeClient, stack_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """The rate is counted side by side with the INSERT; a create the database refuses made nothing, so
    its count is given back (as when the rate was counted only after a successful INSERT)."""
    settings = stack_settings.model_copy(
        update={
            "namespace": f"rate-{uuid.uuid4().hex[:8]}",
            "rate_limit_per_minute": 100,
            "max_active_per_user": 1,
        }
    )
    keys = Keys(settings.namespace)
    client = await make_client()
    async with session_factory() as session:
        owner = await user_by_token(session, token=client.token or "")
        assert owner is not None
    if time.time() % 60 > 55:  # all requests in one window of the counter
        await asyncio.sleep(60 - time.time() % 60)
    minute = int(time.time() // 60)
    async with serve(create_app(settings)) as url:
        api = GraphQLClient(url, client.token)
        try:
            results = []
            for index in range(3):
                request = {"prompt": f"active {index}", "width": 64, "height": 64}
                results.append((await api.query(CREATE, {"input": request}))["createGeneration"])
            accepted = [r["generation"]["id"] for r in results if r["__typename"] == "GenerationPayload"]
            for gid in accepted:  # nothing runs in this namespace: leave nothing queued behind
                assert (await api.query(CANCEL, {"id": gid}))["cancelGeneration"]["__typename"] == "GenerationPayload"
        finally:
            await api.aclose()
    assert [r["__typename"] for r in results] == ["GenerationPayload", "QuotaExceededError", "QuotaExceededError"]
    redis: Redis = Redis.from_url(settings.required_redis_url)
    try:
        assert int(await redis.get(keys.rate(str(owner.id), minute)) or 0) == 1, "only the accepted create counts"
    finally:
        jobs = [job_key_prefix + job_id_for(uuid.UUID(gid), 1) for gid in accepted]
        await redis.delete(keys.queue, keys.rate(str(owner.id), minute), *jobs)
        await redis.aclose()
