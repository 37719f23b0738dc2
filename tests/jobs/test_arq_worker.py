"""SafelightWorker's pickup on arq's public API: `start_jobs` less the jobs this worker runs already."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from arq.constants import in_progress_key_prefix, job_key_prefix

from jobs.enqueue import JOB_FUNCTION, job_id_for
from jobs.keys import Keys
from jobs.worker.app import build_worker
from settings import Settings


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
