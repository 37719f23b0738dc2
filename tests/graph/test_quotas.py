"""The active limit and the rate limit hold for every path that makes work, concurrent requests included.

Schema level, without a worker (the state has a namespace of its own): what is admitted stays QUEUED.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import func, select, update

from db.models import Generation
from db.states import ACTIVE, Status
from settings import Settings
from tests.graph.schema_level import SchemaClient, schema_state

CREATE = """mutation($input: GenerationInput!) { createGeneration(input: $input) {
  __typename ... on GenerationPayload { generation { id } } ... on QuotaExceededError { message limit } } }"""
RAW = """mutation($workflow: JSON!) { createWorkflowGeneration(workflow: $workflow) {
  __typename ... on GenerationPayload { generation { id } } ... on QuotaExceededError { message limit } } }"""
RETRY = """mutation($id: ID!) { retryGeneration(id: $id) {
  __typename ... on GenerationPayload { generation { id status attempt } }
  ... on QuotaExceededError { message limit } } }"""
SMALL = {"prompt": "a quiet harbour", "width": 64, "height": 64, "steps": 2}
T = TypeVar("T")
BLUR: dict[str, Any] = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 3368652}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
}


def _kinds(results: list[dict[str, Any]], field: str) -> Counter[str]:
    return Counter(r[field]["__typename"] for r in results)


async def _active(client: SchemaClient) -> int:
    """The user's active generations, as the database has them (an admin's listing shows everyone's)."""
    async with client.state.sessions() as session:
        stmt = select(func.count()).where(Generation.owner_id == client.user.id, Generation.status.in_(ACTIVE))
        return int((await session.execute(stmt)).scalar_one())


async def _failed_generations(client: SchemaClient, count: int) -> list[str]:
    """`count` generations of the client's user, created and then marked FAILED (as a worker would)."""
    ids = []
    for _ in range(count):
        result = (await client.query(CREATE, {"input": SMALL}))["createGeneration"]
        assert result["__typename"] == "GenerationPayload", result
        ids.append(result["generation"]["id"])
    async with client.state.sessions() as session:
        await session.execute(
            update(Generation).where(Generation.owner_id == client.user.id).values(status=Status.FAILED)
        )
        await session.commit()
    return ids


async def _in_one_minute(run: Callable[[], Awaitable[T]]) -> T:
    """Run again (at most twice more) when the rate limit's one-minute window turned during the run."""
    for _ in range(3):
        minute = int(time.time() // 60)
        result = await run()
        if int(time.time() // 60) == minute:
            return result
    raise AssertionError("the minute turned during three runs")


async def test_60_concurrent_creates_with_a_limit_of_20_admit_exactly_20(stack_settings: Settings) -> None:
    async with schema_state(stack_settings, max_active_per_user=20) as state:
        client = await SchemaClient.create(state)
        results = await asyncio.gather(*(client.query(CREATE, {"input": SMALL}) for _ in range(60)))
        assert _kinds(results, "createGeneration") == {"GenerationPayload": 20, "QuotaExceededError": 40}
        assert await _active(client) == 20


async def test_creates_of_both_kinds_share_the_active_limit_concurrently(stack_settings: Settings) -> None:
    async with schema_state(stack_settings, max_active_per_user=10) as state:
        admin = await SchemaClient.create(state, admin=True)
        creates = [admin.query(CREATE, {"input": SMALL}) for _ in range(15)]
        raws = [admin.query(RAW, {"workflow": BLUR}) for _ in range(15)]
        results = await asyncio.gather(*creates, *raws)
        kinds = _kinds(results[:15], "createGeneration") + _kinds(results[15:], "createWorkflowGeneration")
        assert kinds == {"GenerationPayload": 10, "QuotaExceededError": 20}
        assert await _active(admin) == 10


async def test_retries_are_held_to_the_active_limit_concurrently(stack_settings: Settings) -> None:
    async with schema_state(stack_settings, max_active_per_user=20) as state:
        client = await SchemaClient.create(state)
        ids = await _failed_generations(client, 20)
        more = await asyncio.gather(*(client.query(CREATE, {"input": SMALL}) for _ in range(5)))
        assert _kinds(more, "createGeneration") == {"GenerationPayload": 5}
        results = await asyncio.gather(*(client.query(RETRY, {"id": gid}) for gid in ids))
        assert _kinds(results, "retryGeneration") == {"GenerationPayload": 15, "QuotaExceededError": 5}
        refused = next(
            r["retryGeneration"] for r in results if r["retryGeneration"]["__typename"] != "GenerationPayload"
        )
        assert refused["limit"] == 20 and "queued or running" in refused["message"]
        assert await _active(client) == 20


async def test_retries_count_in_the_rate_limit(stack_settings: Settings) -> None:
    async def run() -> tuple[Counter[str], Counter[str]]:
        async with schema_state(stack_settings, max_active_per_user=1000, rate_limit_per_minute=8) as state:
            client = await SchemaClient.create(state)
            ids = await _failed_generations(client, 5)  # 5 of the minute's 8
            retries = await asyncio.gather(*(client.query(RETRY, {"id": gid}) for gid in ids))
            create = await client.query(CREATE, {"input": SMALL})
            return _kinds(retries, "retryGeneration"), Counter([create["createGeneration"]["__typename"]])

    retried, created = await _in_one_minute(run)
    assert retried == {"GenerationPayload": 3, "QuotaExceededError": 2}
    assert created == {"QuotaExceededError": 1}


async def test_the_active_limit_holds_across_two_api_states(stack_settings: Settings) -> None:
    """Two API states (each its own engine, pool and Redis client, as two processes have) share the limit."""
    async with (
        schema_state(stack_settings, max_active_per_user=20) as one,
        schema_state(stack_settings, max_active_per_user=20, namespace=one.settings.namespace) as two,
    ):
        first = await SchemaClient.create(one)
        second = SchemaClient(two, first.user)
        results = await asyncio.gather(
            *(client.query(CREATE, {"input": SMALL}) for _ in range(30) for client in (first, second))
        )
        assert _kinds(results, "createGeneration") == {"GenerationPayload": 20, "QuotaExceededError": 40}
        assert await _active(first) == 20
