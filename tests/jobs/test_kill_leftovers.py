"""After `kill -9` of a worker mid-job and the takeover, nothing of the dead job is left in Redis: no arq
in-progress key (it lived for the 4 h job timeout), nothing counted as queued in the system status."""

from __future__ import annotations

import asyncio
import signal
import uuid

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix

from comfy.fake.server import FakeHandle
from jobs.enqueue import job_id_for
from jobs.keys import Keys
from jobs.service.system_status import waiting_jobs
from settings import Settings
from tests.jobs.test_crash_recovery import _next_progress, isolated, worker_process
from tests.stack import CREATE, GENERATION_EVENTS, GraphQLClient

pytestmark = pytest.mark.slow

__all__ = ["isolated"]  # the fixture, shared with the crash tests


async def test_a_killed_workers_job_leaves_nothing_in_redis(
    isolated: tuple[Settings, GraphQLClient], fake: FakeHandle, redis_url: str
) -> None:
    settings, client = isolated
    fake.config.step_time = 0.05
    created = await client.query(CREATE, {"input": {"prompt": "leftovers", "width": 64, "height": 64, "steps": 40}})
    gid = created["createGeneration"]["generation"]["id"]
    job_id = job_id_for(uuid.UUID(gid), 1)
    redis = ArqRedis.from_url(redis_url)
    keys = Keys(settings.namespace)
    try:
        async with client.subscription(GENERATION_EVENTS, {"id": gid}) as sub:
            async with worker_process(settings) as first:
                await _next_progress(sub, min_step=3)
                first.send_signal(signal.SIGKILL)
                await asyncio.wait_for(first.wait(), 10)
            assert await redis.exists(in_progress_key_prefix + job_id), "what kill -9 leaves"
            async with worker_process(settings):
                events = [e["generationEvents"] for e in await sub.collect(wait_s=60)]
                assert events[-1]["status"] == "SUCCEEDED"
                for _ in range(200):  # the recovery job ends just after its last event
                    members = await redis.zrange(keys.queue, 0, -1)
                    if not members:
                        break
                    await asyncio.sleep(0.05)
        assert not members, f"nothing queued, nothing left in arq's queue (dead job {job_id})"
        assert not await redis.exists(in_progress_key_prefix + job_id, job_key_prefix + job_id)
        assert await waiting_jobs(redis, keys) == 0
    finally:
        await redis.aclose()
