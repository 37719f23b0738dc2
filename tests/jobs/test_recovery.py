"""Recovery takes over only its own namespace's generations: others may share the database."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from arq.connections import ArqRedis
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.generations import create_generation
from db.models import Generation
from db.states import Status
from db.users import ensure_user
from jobs.keys import Keys
from jobs.worker import recover_orphans


@pytest.fixture
async def arq_redis(redis_url: str) -> AsyncIterator[ArqRedis]:
    client = ArqRedis.from_url(redis_url)
    yield client
    await client.aclose()


async def _orphans(session_factory: async_sessionmaker[AsyncSession], namespace: str) -> list[uuid.UUID]:
    """A RUNNING generation whose worker is gone and a QUEUED one without a job, both of `namespace`."""
    ids = []
    async with session_factory() as session:
        owner = await ensure_user(session, name=f"recovery-{uuid.uuid4().hex[:8]}")
        for status in (Status.RUNNING, Status.QUEUED):
            change, _ = await create_generation(
                session, owner_id=owner.id, template="txt2img", params={"prompt": "p"}, prompt="p", seed=1,
                namespace=namespace,
            )  # fmt: skip
            lease = f"gone-{uuid.uuid4().hex[:6]}/1" if status is Status.RUNNING else None
            long_ago = datetime.fromtimestamp(time.time() - 3600, UTC)
            await session.execute(
                update(Generation)
                .where(Generation.id == change.generation.id)
                .values(status=status, lease=lease, updated_at=long_ago)
            )
            ids.append(change.generation.id)
        await session.commit()
    return ids


async def test_recovery_takes_over_only_its_own_namespace(
    session_factory: async_sessionmaker[AsyncSession], arq_redis: ArqRedis
) -> None:
    mine, theirs = f"rec-{uuid.uuid4().hex[:8]}", f"rec-{uuid.uuid4().hex[:8]}"
    await _orphans(session_factory, mine)
    await _orphans(session_factory, theirs)
    rt: Any = SimpleNamespace(sessions=session_factory, redis=arq_redis, keys=Keys(mine), running={})
    try:
        assert await recover_orphans(rt) == 2  # its own two; the other namespace's are not its to take
        assert await arq_redis.zcard(Keys(mine).queue) == 2
        assert await arq_redis.zcard(Keys(theirs).queue) == 0
        assert await recover_orphans(rt) == 0  # enqueued once, not again
    finally:
        async with session_factory() as session:  # leave no active rows for other tests' recovery
            await session.execute(
                update(Generation).where(Generation.namespace.in_((mine, theirs))).values(status=Status.FAILED)
            )
            await session.commit()
