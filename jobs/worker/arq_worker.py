"""SafelightWorker: arq's Worker, on its public API, with wake-ups, pauses and a close that loses nothing.

Pickup: arq's own poll of its queue, every `SAFELIGHT_WORKER_POLL_DELAY_S` (short: a freed slot takes
the next queued job within it), and a wake-up: every enqueue publishes the job id on Safelight's
control channel (jobs/worker/control.py), and a worker with a free slot starts that job at once with
arq's `Worker.start_jobs` (which checks it is due and not in progress, as the poll does). Only arq's
public API and settings are used; no script writes its keys.

Database outages: a job whose claim finds PostgreSQL unreachable is put back on the queue for later
(jobs/worker/app.py), and the worker stops taking new jobs for a growing pause (`database_down`),
instead of draining its queue into failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from typing import Any

from arq.worker import Worker
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["SafelightWorker"]

log = logging.getLogger(__name__)

_DB_PAUSE_MIN_S = 0.5
_DB_PAUSE_MAX_S = 10.0
# How long close() waits for arq to record the jobs it cancelled (put back on the queue).
_CLOSE_WAIT_S = 5.0


class SafelightWorker(Worker):
    """arq's Worker, on its public API: it polls its queue every `poll_delay` and, on a wake-up with a
    job id, starts that job at once with `Worker.start_jobs`; Redis outages do not stop it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closing = False
        # The arq job id each running generation came with (the heartbeat lists them for recovery).
        self.job_ids: dict[uuid.UUID, str] = {}
        # Safelight's own bookkeeping of arq's jobs: the task running each job function, and the
        # jobs between arq's on_job_start and after_job_end (their results not yet written).
        self.job_functions: dict[str, asyncio.Task[Any]] = {}
        self.in_arq = 0
        self.arq_idle = asyncio.Event()
        self.arq_idle.set()
        self._starting: set[asyncio.Task[None]] = set()
        self._db_failures = 0
        self._held = False
        self._resume: asyncio.TimerHandle | None = None

    # -- pickup --------------------------------------------------------------------------------

    def hold(self) -> None:
        """Take no new jobs (neither by poll nor by wake-up) until `release`."""
        self._held = True
        self.allow_pick_jobs = False

    def release(self) -> None:
        self._held = False
        if self._resume is None:
            self.allow_pick_jobs = True

    def start_now(self, job_id: str) -> None:
        """A wake-up: start `job_id` now if a slot is free (arq checks it is due and not running)."""
        if self.closing or not self.allow_pick_jobs or self.job_counter >= self.max_jobs or self.main_task is None:
            return
        task = asyncio.get_running_loop().create_task(self.start_jobs([job_id.encode()]))
        self._starting.add(task)
        task.add_done_callback(self._started)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's `start_jobs`, less the jobs whose function this worker is running: for each of those,
        arq would ask Redis whether it is in progress (three round trips) on every poll while it runs."""
        if self.job_functions:
            job_ids = [job_id for job_id in job_ids if job_id.decode() not in self.job_functions]
        await super().start_jobs(job_ids)

    def _started(self, task: asyncio.Task[None]) -> None:
        self._starting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("starting a woken job failed (%s); the next poll picks it up", task.exception())

    def database_down(self) -> float:
        """A job found the database unreachable: pause picking up jobs (growing); the pause."""
        self._db_failures += 1
        pause = min(_DB_PAUSE_MAX_S, _DB_PAUSE_MIN_S * 2.0 ** min(self._db_failures - 1, 16))
        if self._resume is not None:
            self._resume.cancel()
        self.allow_pick_jobs = False
        self._resume = asyncio.get_running_loop().call_later(pause, self._pause_over)
        return pause * random.uniform(1.0, 1.5)

    def _pause_over(self) -> None:
        self._resume = None
        if not self._held and not self.closing:
            self.allow_pick_jobs = True

    def database_up(self) -> None:
        self._db_failures = 0

    # -- running and stopping --------------------------------------------------------------------

    def run(self) -> None:
        """Run until a signal (arq's handlers cancel the main task) or the end of a burst, then close."""
        try:
            self.loop.run_until_complete(self.async_run())
        except asyncio.CancelledError:
            pass
        finally:
            self.loop.run_until_complete(self.close())

    async def async_run(self) -> None:
        """arq's `async_run`, started again while Redis is unreachable (running jobs go on: they
        need only PostgreSQL and ComfyUI), until `close` or the end of a burst."""
        while not self.closing:
            try:
                await super().async_run()
                return
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if self.closing:
                    return
                log.warning("queue unavailable (%s); retrying", exc)
                await asyncio.sleep(0.5)

    async def close(self) -> None:
        """Stop polling, cancel running jobs (their leases are taken over once the heartbeat is gone;
        arq puts the jobs back), let arq record them, then shut down and close the Redis pool."""
        if self.closing:
            return
        self.closing = True
        self.allow_pick_jobs = False
        if self._resume is not None:
            self._resume.cancel()
        main = self.main_task
        if main is not None and main is not asyncio.current_task():
            # A cancel can be lost (Python 3.11's wait_for, inside redis-py, may return a result that
            # raced with it), and arq's poll loop then goes on: cancel again until it ends.
            while not main.done():
                main.cancel()
                await asyncio.wait([main], timeout=0.1)
        for task in [*self._starting, *self.job_functions.values()]:
            task.cancel()
        if self._starting:
            await asyncio.wait(self._starting)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.arq_idle.wait(), _CLOSE_WAIT_S)
        with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
            await self.pool.delete(self.health_check_key)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.aclose(close_connection_pool=True)

    # -- arq's job hooks (on_job_start, after_job_end) ---------------------------------------------

    def job_started(self) -> None:
        self.in_arq += 1
        self.arq_idle.clear()

    def job_ended(self) -> None:
        self.in_arq -= 1
        if self.in_arq <= 0:
            self.in_arq = 0
            self.arq_idle.set()
