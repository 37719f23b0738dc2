"""jobs.worker.arq_worker: pickup held and released, and the growing pause after the database was unreachable
(a held worker stays held past it; a release during it waits for its end)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.worker import func

from jobs.enqueue import JOB_FUNCTION, job_id_for
from jobs.keys import Keys
from jobs.worker.app import build_worker
from jobs.worker.arq_worker import SafelightWorker
from settings import Settings


async def _nothing(ctx: dict[str, Any]) -> None:
    return None


@pytest.fixture
async def worker(redis_url: str) -> AsyncIterator[SafelightWorker]:
    """A worker that is never run: only its pickup switches are under test."""
    redis = ArqRedis.from_url(redis_url)
    yield SafelightWorker(
        functions=[func(_nothing, name="nothing")],
        redis_pool=redis,
        queue_name=f"arq-worker-{uuid.uuid4().hex[:8]}:queue",
        handle_signals=False,
    )
    await redis.aclose()


async def _past(seconds: float) -> None:
    """Return once the loop has run every timer due within `seconds` from now (timers fire in order)."""
    done = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds + 0.01, done.set)
    await asyncio.wait_for(done.wait(), seconds + 10)


def test_hold_and_release(worker: SafelightWorker) -> None:
    assert worker.allow_pick_jobs
    worker.hold()
    assert not worker.allow_pick_jobs
    worker.release()
    assert worker.allow_pick_jobs


async def test_the_pause_after_a_database_outage_grows_is_capped_and_starts_over(worker: SafelightWorker) -> None:
    pauses = [worker.database_down() for _ in range(8)]
    assert not worker.allow_pick_jobs
    # 0.5 s doubled per failure up to 10 s; what the caller waits is that with up to half again of jitter.
    for pause, base in zip(pauses, [0.5, 1, 2, 4, 8, 10, 10, 10], strict=True):
        assert base <= pause <= base * 1.5, (pauses, base)
    worker.database_up()
    first = worker.database_down()
    assert 0.5 <= first <= 0.75, "after the database answered, the next outage starts small"
    await _past(first)
    assert worker.allow_pick_jobs, "jobs are taken again once the pause is over"


async def test_a_release_during_the_pause_waits_for_its_end(worker: SafelightWorker) -> None:
    worker.hold()
    pause = worker.database_down()
    worker.release()
    assert not worker.allow_pick_jobs, "still pausing"
    await _past(pause)
    assert worker.allow_pick_jobs


async def test_a_hold_outlasts_the_pause(worker: SafelightWorker) -> None:
    pause = worker.database_down()
    worker.hold()
    await _past(pause)
    assert not worker.allow_pick_jobs, "the pause is over, the hold is not"
    worker.release()
    assert worker.allow_pick_jobs


async def test_a_poll_does_not_ask_redis_about_a_job_this_worker_runs(settings: Settings) -> None:
    """arq's poll hands `start_jobs` every due id in the queue, the running ones included (a job leaves
    the queue when it ends); for a job whose function runs here, nothing is asked of Redis and nothing
    is started. Were it passed on, arq would find it not in progress (its key is absent here) and
    start it: the in-progress key would be set and the job counted."""
    settings = settings.model_copy(update={"namespace": f"pickup-{uuid.uuid4().hex[:8]}"})
    keys = Keys(settings.namespace)
    worker = build_worker(settings, burst=True, handle_signals=False)
    redis = worker.pool
    job_id = job_id_for(uuid.uuid4(), 1)
    running = asyncio.create_task(asyncio.Event().wait())  # stands for the job's function, running here
    try:
        assert await redis.enqueue_job(JOB_FUNCTION, str(uuid.uuid4()), _job_id=job_id, _queue_name=keys.queue)
        worker.job_functions[job_id] = running
        await worker.start_jobs([job_id.encode()])
        assert worker.job_counter == 0
        assert not await redis.exists(in_progress_key_prefix + job_id)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await redis.delete(keys.queue, job_key_prefix + job_id, in_progress_key_prefix + job_id)
        await redis.aclose(close_connection_pool=True)
