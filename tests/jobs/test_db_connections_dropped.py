"""PostgreSQL drops every pooled connection (a restart, `pg_terminate_backend`): the API and the worker
carry on with fresh connections; at most a statement in flight fails, and the job retries it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from comfy.fake.server import FakeHandle
from settings import Settings
from tests.jobs.test_lifecycle import create, finished, wait_for
from tests.stack import GraphQLClient

MakeClient = Callable[..., Awaitable[GraphQLClient]]


async def _terminate_safelight_backends(settings: Settings) -> int:
    conn = await asyncpg.connect(str(settings.database_url))
    try:
        killed = await conn.fetchval(
            """
            SELECT array_agg(pid) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = 'safelight' AND pid <> pg_backend_pid()
            """
        )
        killed = killed or []
        # The backends are gone (their sockets closed) once the server no longer lists them; the API and
        # the worker share this event loop, which reads those closes while this waits.
        async with asyncio.timeout(10):
            while True:
                if not await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", killed):
                    break
                await asyncio.sleep(0.01)
    finally:
        await conn.close()
    return len(killed)


@pytest.mark.usefixtures("worker")
async def test_api_and_worker_survive_dropped_connections(
    make_client: MakeClient, fake: FakeHandle, stack_settings: Settings
) -> None:
    client = await make_client()
    assert (await finished(client, await create(client)))["status"] == "SUCCEEDED"  # pools are warm
    assert await _terminate_safelight_backends(stack_settings) > 0

    # Between jobs: the next mutation and the next job just work.
    generation = await finished(client, await create(client))
    assert generation["status"] == "SUCCEEDED"
    assert generation["attempt"] == 1

    # In the middle of a job: it still ends SUCCEEDED (retried if a statement was in flight).
    fake.config.step_time = 0.05
    gid = await create(client, steps=20)
    await wait_for(client, gid, lambda g: g["progress"]["phase"] == "EXECUTING")
    assert await _terminate_safelight_backends(stack_settings) > 0
    generation = await finished(client, gid)
    assert generation["status"] == "SUCCEEDED"
    assert len(generation["images"]) == 1
