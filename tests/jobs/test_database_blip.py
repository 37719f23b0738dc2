"""PostgreSQL unreachable for a few seconds under load (a TCP proxy cut for this test's connections only).

Every generation still reaches a terminal state (or resumes): a job whose final write failed leaves
its generation RUNNING under the lease of a worker that beats on, and recovery takes it over. Jobs
whose claim failed are tried again later (not as attempts) instead of being drained into failures,
and `generationEvents` subscriptions ride it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlparse

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.proxy import CuttableProxy, cuttable_proxy
from comfy.fake.server import FakeHandle
from db.models import Generation
from db.users import create_token, ensure_user
from graph.app import create_app
from jobs.worker.app import build_worker
from jobs.worker.submit import prompt_id_for
from settings import Settings
from tests.stack import CREATE, GENERATION_EVENTS, GraphQLClient, serve

pytestmark = pytest.mark.slow

N = 8


@pytest.fixture
async def pg_proxy(database_url: str) -> AsyncIterator[CuttableProxy]:
    target = urlparse(database_url)
    async with cuttable_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        yield proxy


async def _until(check: Callable[[], Any], *, within_s: float, equals: Any = True) -> None:
    """Poll `check()` (sync or async) until it returns `equals`."""
    async with asyncio.timeout(within_s):
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value == equals:
                return
            await asyncio.sleep(0.1)


async def _statuses(sessions: async_sessionmaker[AsyncSession], namespace: str) -> dict[str, int]:
    async with sessions() as session:
        rows = await session.execute(
            select(Generation.status, func.count()).where(Generation.namespace == namespace).group_by(Generation.status)
        )
        return {status.value: int(n) for status, n in rows.all()}


async def test_database_blip_leaves_nothing_running_and_subscriptions_ride_it_out(
    pg_proxy: CuttableProxy,
    stack_settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    fake: FakeHandle,
) -> None:
    namespace = f"blip-{uuid.uuid4().hex[:8]}"
    settings = stack_settings.model_copy(
        update={
            "database_url": pg_proxy.url(str(stack_settings.database_url)),
            "namespace": namespace,
            "worker_heartbeat_s": 0.5,
            "worker_concurrency": 4,
        }
    )
    async with session_factory() as session:
        user = await ensure_user(session, name=f"blip-{uuid.uuid4().hex[:8]}")
        token = await create_token(session, user_id=user.id)
        await session.commit()
    fake.config.step_time = 0.03
    worker = build_worker(settings, handle_signals=False)
    worker_task = asyncio.create_task(worker.async_run())
    try:
        async with serve(create_app(settings)) as url, contextlib.AsyncExitStack() as stack:
            client = GraphQLClient(url, token)
            stack.push_async_callback(client.aclose)
            gids, subs = [], []
            for index in range(N):
                request = {"prompt": f"blip {index}", "width": 64, "height": 64, "steps": 30}
                created = await client.query(CREATE, {"input": request})
                gid = created["createGeneration"]["generation"]["id"]
                gids.append(gid)
                sub = await stack.enter_async_context(client.subscription(GENERATION_EVENTS, {"id": gid}))
                first = await sub.next(30)  # the SNAPSHOT, whose fields read the database, before the cut
                assert first is not None and first["generationEvents"]["kind"] == "SNAPSHOT"
                subs.append(sub)
            # Cut while some run on ComfyUI and the rest wait in the queue.
            while True:
                data = await subs[0].next(30)
                assert data is not None
                if (data["generationEvents"]["progress"] or {}).get("step"):
                    break
            await pg_proxy.cut()
            await asyncio.sleep(4)
            await pg_proxy.restore()
            results = await asyncio.gather(*(sub.collect(wait_s=120) for sub in subs))
    finally:
        await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await worker_task
    finals = [events[-1]["generationEvents"] if events else None for events in results]
    assert all(final is not None and final["terminal"] for final in finals), finals
    assert await _statuses(session_factory, namespace) == {"SUCCEEDED": N}
    for gid in gids:  # resumed, not run again: each prompt ComfyUI saw ran once
        runs = [fake.fake.stats.executions[prompt_id_for(uuid.UUID(gid), attempt)] for attempt in (1, 2, 3)]
        assert sum(runs) == 1, (gid, runs)


async def test_claims_failing_on_an_unreachable_database_back_off_instead_of_draining_the_queue(
    pg_proxy: CuttableProxy,
    stack_settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    fake: FakeHandle,
) -> None:
    namespace = f"drain-{uuid.uuid4().hex[:8]}"
    direct = stack_settings.model_copy(update={"namespace": namespace})
    proxied = direct.model_copy(
        update={"database_url": pg_proxy.url(str(stack_settings.database_url)), "worker_concurrency": 4}
    )
    async with session_factory() as session:
        user = await ensure_user(session, name=f"drain-{uuid.uuid4().hex[:8]}")
        token = await create_token(session, user_id=user.id)
        await session.commit()
    queued = 40
    async with serve(create_app(direct)) as url:  # the API reaches the database; the worker does not
        client = GraphQLClient(url, token)
        try:
            for index in range(queued):
                request = {"prompt": f"drain {index}", "width": 64, "height": 64, "steps": 1}
                await client.query(CREATE, {"input": request})
        finally:
            await client.aclose()
    await pg_proxy.cut()
    worker = build_worker(proxied, handle_signals=False)
    worker_task = asyncio.create_task(worker.async_run())
    try:
        await _until(lambda: worker.jobs_retried >= 1, within_s=30)
        await asyncio.sleep(3)  # the outage goes on
        tries = worker.jobs_retried + worker.jobs_failed + worker.jobs_complete
        assert worker.jobs_failed == 0, "no job fails for an unreachable database"
        assert tries <= 20, f"{tries} jobs tried in 3 s of outage: the worker must pause, not drain its queue"
        await pg_proxy.restore()
        await _until(lambda: _statuses(session_factory, namespace), within_s=120, equals={"SUCCEEDED": queued})
        statuses = await _statuses(session_factory, namespace)
    finally:
        await pg_proxy.restore()
        await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await worker_task
    async with session_factory() as session:
        attempts = set(
            (await session.execute(select(Generation.attempt).where(Generation.namespace == namespace))).scalars()
        )
    assert attempts == {1}, "waiting for the database is not an attempt"
    assert statuses == {"SUCCEEDED": queued}
