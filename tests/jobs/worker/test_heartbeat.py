"""jobs.worker.heartbeat: what a beat records (and for how long) for system status and recovery, and a clean
stop forgetting it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from arq.connections import ArqRedis

from jobs.keys import Keys
from jobs.worker.heartbeat import VERSION, beat, forget
from settings import Settings


@pytest.fixture
async def runtime(redis_url: str, settings: Settings) -> AsyncIterator[Any]:
    redis = ArqRedis.from_url(redis_url)
    one, two = uuid.uuid4(), uuid.uuid4()
    yield SimpleNamespace(
        settings=settings.model_copy(update={"worker_heartbeat_s": 2.0, "job_timeout_s": 100.0}),
        redis=redis,
        keys=Keys(f"beat-{uuid.uuid4().hex[:8]}"),
        worker_id="w-1",
        backends=SimpleNamespace(urls=("http://comfy-a:8188",)),
        running={one: SimpleNamespace(lease="w-1/1"), two: SimpleNamespace(lease="w-1/2")},
        job_ids={one: f"gen:{one}:1"},  # the second run's job id is not known (yet)
    )
    await redis.aclose()


async def test_a_beat_says_who_runs_what_and_expires_after_three_missed(runtime: Any) -> None:
    keys, redis = runtime.keys, runtime.redis
    try:
        before = time.time()
        await beat(runtime, runtime.job_ids)
        record = json.loads(await redis.get(keys.worker("w-1")))
        assert record["id"] == "w-1" and record["version"] == VERSION
        assert record["fingerprint"] == runtime.settings.fingerprint()
        assert record["comfyui_urls"] == ["http://comfy-a:8188"]
        assert sorted(record["in_flight"]) == sorted(str(g) for g in runtime.running)
        assert sorted(record["leases"]) == ["w-1/1", "w-1/2"]
        assert before <= record["beat_at"] <= time.time()
        assert 5_000 < await redis.pttl(keys.worker("w-1")) <= 6_000, "three beats of 2 s"

        (one,) = runtime.job_ids
        assert json.loads(await redis.get(keys.worker_jobs("w-1"))) == {"w-1/1": f"gen:{one}:1", "w-1/2": ""}
        assert 100_000 < await redis.pttl(keys.worker_jobs("w-1")) <= 160_000, "as long as a job may run, and a minute"
        assert await redis.zscore(keys.workers, "w-1") >= before

        await forget(runtime)
        assert not await redis.exists(keys.worker("w-1"), keys.worker_jobs("w-1"))
        assert await redis.zscore(keys.workers, "w-1") is None
    finally:
        await redis.delete(keys.worker("w-1"), keys.worker_jobs("w-1"), keys.workers)


async def test_an_idle_worker_beats_with_nothing_in_flight(runtime: Any) -> None:
    runtime.running = {}
    try:
        await beat(runtime)
        record = json.loads(await runtime.redis.get(runtime.keys.worker("w-1")))
        assert (record["in_flight"], record["leases"]) == ([], [])
        assert json.loads(await runtime.redis.get(runtime.keys.worker_jobs("w-1"))) == {}
    finally:
        await forget(runtime)
