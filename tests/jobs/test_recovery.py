"""Recovery: which active generations are orphans, how fast they are found, what is cleaned up.

- only its own namespace's (others may share the database);
- a lease whose worker beats but no longer runs it (its job ended without its final write, as when
  PostgreSQL was unreachable) is an orphan too;
- a dead worker's orphans are found whatever the QUEUED backlog, and resume ahead of it;
- a dead worker's arq job is removed (its in-progress key would otherwise live for the job timeout,
  and system status would count it as queued).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Generation
from db.states import Status
from db.transitions import create_generation
from db.users import ensure_user
from jobs.enqueue import enqueue_generation, job_id_for
from jobs.keys import Keys
from jobs.service.system_status import waiting_jobs
from jobs.worker.recovery import recover_orphans

LONG_AGO = datetime.fromtimestamp(time.time() - 3600, UTC)


@pytest.fixture
async def arq_redis(redis_url: str) -> AsyncIterator[ArqRedis]:
    client = ArqRedis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def namespaces(session_factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[list[str]]:
    used: list[str] = []
    yield used
    async with session_factory() as session:  # leave no active rows for other tests' recovery
        await session.execute(update(Generation).where(Generation.namespace.in_(used)).values(status=Status.FAILED))
        await session.commit()


def _runtime(session_factory: async_sessionmaker[AsyncSession], redis: ArqRedis, namespace: str) -> Any:
    return SimpleNamespace(
        sessions=session_factory,
        redis=redis,
        keys=Keys(namespace),
        running={},
        settings=SimpleNamespace(worker_heartbeat_s=1.0),
    )


async def _generation(
    session_factory: async_sessionmaker[AsyncSession],
    namespace: str,
    status: Status,
    *,
    lease: str | None = None,
    updated_at: datetime = LONG_AGO,
) -> uuid.UUID:
    async with session_factory() as session:
        owner = await ensure_user(session, name=f"recovery-{uuid.uuid4().hex[:8]}")
        change, _ = await create_generation(
            session, owner_id=owner.id, template="txt2img", params={"prompt": "p"}, prompt="p", seed=1,
            namespace=namespace,
        )  # fmt: skip
        await session.execute(
            update(Generation)
            .where(Generation.id == change.generation.id)
            .values(status=status, lease=lease, updated_at=updated_at)
        )
        await session.commit()
    return change.generation.id


async def _lease(session_factory: async_sessionmaker[AsyncSession], gid: uuid.UUID) -> str | None:
    async with session_factory() as session:
        return (await session.execute(select(Generation.lease).where(Generation.id == gid))).scalar_one()


async def _beat(redis: ArqRedis, keys: Keys, worker_id: str, leases: list[str]) -> None:
    record = {"id": worker_id, "leases": leases, "beat_at": time.time()}
    await redis.set(keys.worker(worker_id), json.dumps(record), px=60_000)


async def test_recovery_takes_over_only_its_own_namespace(
    session_factory: async_sessionmaker[AsyncSession], arq_redis: ArqRedis, namespaces: list[str]
) -> None:
    mine, theirs = f"rec-{uuid.uuid4().hex[:8]}", f"rec-{uuid.uuid4().hex[:8]}"
    namespaces += [mine, theirs]
    for namespace in (mine, theirs):
        await _generation(session_factory, namespace, Status.RUNNING, lease=f"gone-{uuid.uuid4().hex[:6]}/1")
        await _generation(session_factory, namespace, Status.QUEUED)
    runtime = _runtime(session_factory, arq_redis, mine)
    assert await recover_orphans(runtime) == 2  # its own two; the other namespace's are not its to take
    assert await arq_redis.zcard(Keys(mine).queue) == 2
    assert await arq_redis.zcard(Keys(theirs).queue) == 0
    assert await recover_orphans(runtime) == 0  # enqueued once, not again


async def test_a_lease_its_live_worker_no_longer_runs_is_recovered(
    session_factory: async_sessionmaker[AsyncSession], arq_redis: ArqRedis, namespaces: list[str]
) -> None:
    """PostgreSQL blipped at a job's final write: the job ended, its worker beats on, the row stays RUNNING."""
    namespace = f"rec-{uuid.uuid4().hex[:8]}"
    namespaces.append(namespace)
    keys = Keys(namespace)
    worker_id = f"alive-{uuid.uuid4().hex[:6]}"
    stuck = await _generation(session_factory, namespace, Status.RUNNING, lease=f"{worker_id}/stuck")
    running = await _generation(session_factory, namespace, Status.RUNNING, lease=f"{worker_id}/running")
    just_claimed = await _generation(
        session_factory, namespace, Status.RUNNING, lease=f"{worker_id}/new", updated_at=datetime.now(UTC)
    )
    await _beat(arq_redis, keys, worker_id, [f"{worker_id}/running"])
    runtime = _runtime(session_factory, arq_redis, namespace)

    assert await recover_orphans(runtime) == 1
    assert await _lease(session_factory, stuck) is None, "released for the recovery job to take over"
    assert await _lease(session_factory, running) == f"{worker_id}/running", "listed in the heartbeat: running"
    assert await _lease(session_factory, just_claimed) == f"{worker_id}/new", "claimed after the last beat"
    (first,) = await arq_redis.zrange(keys.queue, 0, -1)
    assert first.decode().startswith(f"gen:{stuck}:1:r-")
    assert await recover_orphans(runtime) == 0


async def test_a_dead_workers_orphans_are_found_behind_a_backlog_and_resume_first(
    session_factory: async_sessionmaker[AsyncSession], arq_redis: ArqRedis, namespaces: list[str]
) -> None:
    namespace = f"rec-{uuid.uuid4().hex[:8]}"
    namespaces.append(namespace)
    keys = Keys(namespace)
    for _ in range(250):  # a backlog, queued long ago, each with its job
        gid = await _generation(session_factory, namespace, Status.QUEUED)
        assert await enqueue_generation(arq_redis, keys, generation_id=gid, attempt=1)
    orphan = await _generation(
        session_factory, namespace, Status.RUNNING, lease="killed-1/abc", updated_at=datetime.now(UTC)
    )
    runtime = _runtime(session_factory, arq_redis, namespace)

    assert await recover_orphans(runtime) == 1
    first = (await arq_redis.zrange(keys.queue, 0, 0))[0].decode()
    assert first.startswith(f"gen:{orphan}:1:r-"), "the recovery job is ahead of the backlog"
    assert await arq_redis.zcard(keys.queue) == 251


async def test_recovery_removes_a_killed_workers_arq_job(
    session_factory: async_sessionmaker[AsyncSession], arq_redis: ArqRedis, namespaces: list[str]
) -> None:
    namespace = f"rec-{uuid.uuid4().hex[:8]}"
    namespaces.append(namespace)
    keys = Keys(namespace)
    lease = "killed-2/abc"
    gid = await _generation(session_factory, namespace, Status.RUNNING, lease=lease)
    # What the killed worker left: its job in the queue, marked in progress, and its job list.
    job_id = job_id_for(gid, 1)
    assert await enqueue_generation(arq_redis, keys, generation_id=gid, attempt=1)
    await arq_redis.set(in_progress_key_prefix + job_id, b"1", px=3_600_000)
    await arq_redis.set(keys.worker_jobs("killed-2"), json.dumps({lease: job_id}), px=3_600_000)
    assert await waiting_jobs(arq_redis, keys) == 0, "a job in progress is not queued"
    runtime = _runtime(session_factory, arq_redis, namespace)

    assert await recover_orphans(runtime) == 1
    assert not await arq_redis.exists(in_progress_key_prefix + job_id, job_key_prefix + job_id)
    (only,) = await arq_redis.zrange(keys.queue, 0, -1)
    assert only.decode() != job_id
    assert await waiting_jobs(arq_redis, keys) == 1, "only the recovery job waits"


async def test_recovery_removes_the_job_of_a_worker_killed_before_its_first_beat(
    session_factory: async_sessionmaker[AsyncSession], arq_redis: ArqRedis, namespaces: list[str]
) -> None:
    namespace = f"rec-{uuid.uuid4().hex[:8]}"
    namespaces.append(namespace)
    keys = Keys(namespace)
    gid = await _generation(session_factory, namespace, Status.RUNNING, lease="killed-3/abc")
    job_id = job_id_for(gid, 1)  # no job list: it never beat with this job
    assert await enqueue_generation(arq_redis, keys, generation_id=gid, attempt=1)
    await arq_redis.set(in_progress_key_prefix + job_id, b"1", px=3_600_000)

    assert await recover_orphans(_runtime(session_factory, arq_redis, namespace)) == 1
    assert not await arq_redis.exists(in_progress_key_prefix + job_id, job_key_prefix + job_id)
    assert await waiting_jobs(arq_redis, keys) == 1, "only the recovery job waits"


async def test_a_released_generation_gets_one_recovery_job_however_long_it_waits(
    session_factory: async_sessionmaker[AsyncSession], arq_redis: ArqRedis, namespaces: list[str]
) -> None:
    """Every worker busy: the recovery job waits at the front, the row stays without lease; later scans
    name the same job (arq does not enqueue it twice)."""
    namespace = f"rec-{uuid.uuid4().hex[:8]}"
    namespaces.append(namespace)
    keys = Keys(namespace)
    gid = await _generation(session_factory, namespace, Status.RUNNING, lease="killed-4/abc")
    runtime = _runtime(session_factory, arq_redis, namespace)
    assert await recover_orphans(runtime) == 1
    assert await _lease(session_factory, gid) is None
    assert await recover_orphans(runtime, unlisted_grace_s=0.0) == 0, "its recovery job is queued already"
    assert await arq_redis.zcard(keys.queue) == 1
