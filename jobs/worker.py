"""The arq worker: settings, resources built in on_startup, fast pickup, heartbeats, recovery.

Pickup: arq's own poll of its queue, every `SAFELIGHT_WORKER_POLL_DELAY_S`
(short: a freed slot takes the next queued job within it), and a wake-up: every
enqueue publishes the job id on Safelight's control channel, and a worker with
a free slot starts that job at once with arq's `Worker.start_jobs` (which checks
it is due and not in progress, as the poll does), a pub/sub hop after it was
queued. Only arq's public API and settings are used; no script writes its keys.

Recovery: a worker killed with SIGKILL leaves arq's in-progress key for the job
timeout (hours). Each worker therefore keeps a heartbeat key with a short TTL,
listing the leases of the jobs it runs, and at every heartbeat looks at all
active generations of its namespace: one whose lease belongs to a worker without
heartbeat, or to a worker that beats but no longer lists that lease (its job
ended without the final write: the database was unreachable), is an orphan.
Its lease is released, the dead job's arq keys are removed, and a recovery job
goes to the front of the queue (ahead of any backlog); it takes the generation
over and resumes from ComfyUI's queue and history instead of generating again.

Database outages: a job whose claim finds PostgreSQL unreachable is put back on
the queue for later with arq's `Retry` (not a generation attempt), and the
worker stops taking new jobs for a growing pause, instead of draining its queue
into failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import uvloop
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.worker import Retry, Worker, func
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from comfy.templates import load_templates
from db import generation_reads, transitions
from db.engine import create_engine, create_session_factory, single_statement
from db.reachability import database_unreachable
from jobs.backend_list import read_backend_urls
from jobs.backends import BackendPool
from jobs.enqueue import JOB_FUNCTION, attempt_of, enqueue_generation, job_id_for, wake
from jobs.generate import run_generation
from jobs.keys import Keys
from jobs.logs import configure_logging, generation_context
from jobs.runtime import Runtime
from jobs.storage import ImageStore
from settings import Settings

__all__ = ["SafelightWorker", "build_worker", "recover_orphans", "run_worker"]

log = logging.getLogger(__name__)

VERSION = "0.1.0"


# arq's tries of one job (not generation attempts): a job is tried again only when it raises Retry
# (its claim found the database unreachable) or when a stopping worker cancelled it.
_MAX_JOB_TRIES = 1000
_DB_PAUSE_MIN_S = 0.5
_DB_PAUSE_MAX_S = 10.0
_REDIS_TIMEOUT_S = 5.0
# How long close() waits for arq to record the jobs it cancelled (put back on the queue).
_CLOSE_WAIT_S = 5.0


async def generate(ctx: dict[str, Any], generation_id: str) -> None:
    rt: Runtime = ctx["runtime"]
    worker: SafelightWorker = ctx["worker"]
    job_id = str(ctx.get("job_id", ""))
    gid = uuid.UUID(generation_id)
    generation_context(generation_id)  # arq runs each job in its own task: this tags only its lines
    worker.job_ids[gid] = job_id
    task = asyncio.current_task()
    if task is not None:
        worker.job_functions[job_id] = task
    try:
        await run_generation(rt, gid, attempt_of(job_id))
    except Exception as exc:
        if not database_unreachable(exc):
            raise
        # PostgreSQL is unreachable (the claim, or a final write: then recovery resumes the
        # generation once its lease is seen without a job). Try this job again later, not as an
        # attempt, and stop taking new jobs for a while rather than failing the whole queue. The
        # job keeps its slot meanwhile: arq's `start_jobs` goes on through the ids its poll read
        # as long as slots free up, so a freed slot would start (and fail) the next queued job.
        pause = worker.database_down()
        log.warning("generation %s: database unreachable (%s); job retried in %.1fs", gid, exc, pause)
        await asyncio.sleep(pause)
        raise Retry(defer=timedelta(seconds=pause * random.uniform(0.0, 0.5))) from None
    else:
        worker.database_up()
    finally:
        if worker.job_ids.get(gid) == job_id:
            del worker.job_ids[gid]
        if worker.job_functions.get(job_id) is task:
            del worker.job_functions[job_id]


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


async def _job_started(ctx: dict[str, Any]) -> None:
    worker: SafelightWorker = ctx["worker"]
    worker.in_arq += 1
    worker.arq_idle.clear()


async def _job_ended(ctx: dict[str, Any]) -> None:
    worker: SafelightWorker = ctx["worker"]
    worker.in_arq -= 1
    if worker.in_arq <= 0:
        worker.in_arq = 0
        worker.arq_idle.set()


def build_worker(settings: Settings, *, burst: bool = False, handle_signals: bool = True) -> SafelightWorker:
    keys = Keys(settings.namespace)
    redis = ArqRedis(
        connection_pool=ConnectionPool.from_url(
            settings.required_redis_url, socket_connect_timeout=_REDIS_TIMEOUT_S, socket_timeout=_REDIS_TIMEOUT_S
        ),
        default_queue_name=keys.queue,
    )
    ctx: dict[str, Any] = {"settings": settings}
    worker = SafelightWorker(
        functions=[func(generate, name=JOB_FUNCTION, timeout=settings.job_timeout_s, max_tries=_MAX_JOB_TRIES)],
        redis_pool=redis,
        queue_name=keys.queue,
        max_jobs=settings.worker_concurrency,
        job_timeout=settings.job_timeout_s,
        keep_result=0,
        poll_delay=settings.worker_poll_delay_s,
        burst=burst,
        handle_signals=handle_signals,
        on_startup=_startup,
        on_shutdown=_shutdown,
        on_job_start=_job_started,
        after_job_end=_job_ended,
        ctx=ctx,
    )
    ctx["worker"] = worker
    return worker


def run_worker(settings: Settings, *, burst: bool = False) -> None:
    configure_logging(settings.log_level, json_lines=settings.log_json)
    # uvloop, as uvicorn gives the API: the worker's hot path is socket I/O (ComfyUI's websocket in,
    # a PUBLISH per progress message out); relaying 2,000 progress/s it cost 8 % less CPU than asyncio's.
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        build_worker(settings, burst=burst).run()
    finally:
        asyncio.set_event_loop(None)
        loop.close()


async def _startup(ctx: dict[str, Any]) -> None:
    if "runtime" in ctx:
        return  # arq started again after a Redis outage: everything is built already
    settings: Settings = ctx["settings"]
    worker: SafelightWorker = ctx["worker"]
    worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    engine = create_engine(settings, pool_size=max(4, settings.worker_concurrency))
    backends = BackendPool(client_id=f"safelight-{worker_id}", timeout_s=settings.comfy_timeout_s)
    if not settings.comfyui_urls:
        log.warning("COMFYUI_URLS is empty: jobs will wait for a backend")
    rt = Runtime(
        settings=settings,
        sessions=create_session_factory(engine),
        redis=ctx["redis"],
        keys=Keys(settings.namespace),
        backends=backends,
        store=ImageStore(settings.images_dir),
        templates=load_templates(settings.template_dirs),
        worker_id=worker_id,
    )
    ctx["runtime"] = rt
    ctx["engine"] = engine
    await backends.reconcile(settings.comfyui_urls)
    await _beat(rt, worker.job_ids)
    listener_ready = asyncio.Event()
    ctx["tasks"] = [
        asyncio.create_task(_listen(rt, worker, listener_ready)),
        asyncio.create_task(_heartbeat_loop(rt, worker)),
    ]
    await asyncio.wait_for(listener_ready.wait(), 10)
    log.info("worker %s ready: backends %s, concurrency %d", worker_id, backends.urls, settings.worker_concurrency)


async def _shutdown(ctx: dict[str, Any]) -> None:
    rt: Runtime | None = ctx.get("runtime")
    for task in ctx.get("tasks", []):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if rt is not None:
        # Stopping cleanly: our leases may be taken over at once.
        await rt.redis.delete(rt.keys.worker(rt.worker_id), rt.keys.worker_jobs(rt.worker_id))
        await rt.redis.zrem(rt.keys.workers, rt.worker_id)
        await rt.backends.close()
    engine = ctx.get("engine")
    if engine is not None:
        await engine.dispose()


async def _listen(rt: Runtime, worker: SafelightWorker, ready: asyncio.Event) -> None:
    """Wake-ups and cancel requests, on one pub/sub connection; reconnects after Redis restarts."""
    while True:
        client: Redis = Redis.from_url(rt.settings.required_redis_url)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(rt.keys.control)
            ready.set()  # anything enqueued while we were not listening: the next poll finds it
            async for message in pubsub.listen():
                _on_control(rt, worker, message["data"])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("control channel lost (%s); reconnecting", exc)
            await asyncio.sleep(0.5)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await client.aclose()


def _on_control(rt: Runtime, worker: SafelightWorker, raw: bytes) -> None:
    try:
        message = json.loads(raw)
    except ValueError:
        return
    if message.get("op") == "wake":
        job_id = message.get("job")
        if isinstance(job_id, str) and job_id:
            worker.start_now(job_id)
    elif message.get("op") == "cancel":
        with contextlib.suppress(ValueError, KeyError):
            run = rt.running.get(uuid.UUID(message["g"]))
            if run is not None:
                run.request_cancel()


async def _beat(rt: Runtime, job_ids: dict[uuid.UUID, str] | None = None) -> None:
    """The heartbeat: who this worker is, and the leases (with their arq job ids) it runs right now.

    The record expires after three missed beats. The job ids are also kept under `worker_jobs` for as
    long as arq's in-progress key may live, so that recovery can remove those of a killed worker.
    """
    settings = rt.settings
    job_ids = job_ids or {}
    runs = {run.lease: job_ids.get(gid, "") for gid, run in list(rt.running.items())}
    record = {
        "id": rt.worker_id,
        "version": VERSION,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "concurrency": settings.worker_concurrency,
        "fingerprint": settings.fingerprint(),
        "comfyui_urls": list(rt.backends.urls),
        "in_flight": [str(gid) for gid in rt.running],
        "leases": list(runs),
        "beat_at": time.time(),
    }
    ttl_ms = int(settings.worker_heartbeat_s * 3 * 1000)
    jobs_ttl_ms = int((settings.job_timeout_s + 60) * 1000)
    async with rt.redis.pipeline(transaction=False) as pipe:
        pipe.set(rt.keys.worker(rt.worker_id), json.dumps(record), px=ttl_ms)
        pipe.set(rt.keys.worker_jobs(rt.worker_id), json.dumps(runs), px=jobs_ttl_ms)
        pipe.zadd(rt.keys.workers, {rt.worker_id: time.time()})
        await pipe.execute()


async def _heartbeat_loop(rt: Runtime, worker: SafelightWorker) -> None:
    interval = rt.settings.worker_heartbeat_s
    while True:
        await asyncio.sleep(interval * random.uniform(0.8, 1.0))
        try:
            await _beat(rt, worker.job_ids)
            await _reconcile_backends(rt)
            await recover_orphans(rt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if database_unreachable(exc):
                log.warning("heartbeat round: database unreachable (%s)", exc)
            else:
                log.exception("heartbeat round failed")


async def _reconcile_backends(rt: Runtime) -> None:
    """The backend list is data (jobs/backend_list.py): follow it without a restart."""
    urls = await read_backend_urls(rt.redis, rt.keys, default=rt.settings.comfyui_urls)
    if set(urls) != set(rt.backends.urls):
        log.info("backend list changed: %s -> %s", rt.backends.urls, urls)
        await rt.backends.reconcile(urls)


# A job ahead of every other in arq's queue (sorted by due time): arq's own `_defer_until`, in the past.
_FRONT = datetime(2000, 1, 1, tzinfo=UTC)
_RECOVERY_JOB_EXPIRES = timedelta(days=1)


async def recover_orphans(rt: Runtime, *, queued_grace_s: float = 30.0, unlisted_grace_s: float | None = None) -> int:
    """Resume generations nobody is working on; the number re-enqueued.

    - RUNNING/CANCELLING ones whose lease belongs to a worker without heartbeat (killed), or to a
      worker that beats but has not listed the lease for `unlisted_grace_s` (its job ended without
      its final write, e.g. PostgreSQL was unreachable then): their lease is released, the dead job's
      arq keys removed, and a recovery job goes to the front of the queue. All active rows are read
      (they are bounded by the workers' concurrency), whatever the QUEUED backlog.
    - an active one without lease for `unlisted_grace_s` (released, and its recovery job was lost
      with Redis): a recovery job again;
    - QUEUED ones whose arq job is gone (Redis lost its data): re-enqueued.

    Only this namespace's: another namespace sharing the database has its own queue, workers and
    heartbeats, none visible here.
    """
    if unlisted_grace_s is None:
        unlisted_grace_s = 2 * rt.settings.worker_heartbeat_s
    namespace = rt.keys.namespace
    async with single_statement(rt.sessions) as session:
        active = await generation_reads.active_leases(session, namespace=namespace)
        queued = await generation_reads.stale_queued(
            session, namespace=namespace, updated_before=datetime.now(UTC) - timedelta(seconds=queued_grace_s)
        )
    count = 0
    if active:
        workers = await _worker_records(rt, {row.lease.split("/", 1)[0] for row in active if row.lease})
        for row in active:
            ours = rt.running.get(row.id)
            if ours is not None and ours.lease == row.lease:
                continue
            if await _recover_active(rt, row, workers, unlisted_grace_s):
                count += 1
    if queued:
        async with rt.redis.pipeline(transaction=False) as pipe:
            for row in queued:
                job_id = job_id_for(row.id, row.attempt)
                pipe.exists(job_key_prefix + job_id, in_progress_key_prefix + job_id)
            exists = await pipe.execute()
        for row, found in zip(queued, exists, strict=True):
            if not found and await enqueue_generation(rt.redis, rt.keys, generation_id=row.id, attempt=row.attempt):
                log.warning("generation %s was QUEUED without a job; re-enqueued", row.id)
                count += 1
    return count


async def _worker_records(rt: Runtime, worker_ids: set[str]) -> dict[str, dict[str, Any] | None]:
    """Each worker's heartbeat record (None: it stopped beating)."""
    ordered = sorted(worker_ids)
    if not ordered:
        return {}
    raw = await rt.redis.mget([rt.keys.worker(w) for w in ordered])
    out: dict[str, dict[str, Any] | None] = {}
    for worker_id, value in zip(ordered, raw, strict=True):
        try:
            out[worker_id] = None if value is None else dict(json.loads(value))
        except (ValueError, TypeError):
            out[worker_id] = {}
    return out


async def _recover_active(
    rt: Runtime, row: generation_reads.ActiveRow, workers: dict[str, dict[str, Any] | None], unlisted_grace_s: float
) -> bool:
    lease = row.lease
    age = time.time() - row.updated_at.timestamp()
    if lease is None:
        if age < unlisted_grace_s:
            return False  # just released: its recovery job is on the way
        why = "without lease"
        job_ids: list[str] = []
        released = row.updated_at
    else:
        worker_id = lease.split("/", 1)[0]
        record = workers.get(worker_id)
        if record is None:
            why = f"worker {worker_id} is gone"
        else:
            leases = record.get("leases")
            if leases is None or lease in leases:
                return False  # alive and running it (or a worker too old to say)
            # Listed nowhere: its job is over. The grace covers a claim committed just before the
            # beat that would list it (the beat's time and the claim's both come from that worker).
            if float(record.get("beat_at", 0.0)) - row.updated_at.timestamp() < unlisted_grace_s:
                return False
            why = f"worker {worker_id} beats but no longer runs it"
        async with single_statement(rt.sessions) as session:
            released_at = await transitions.release_lease(session, generation_id=row.id, lease=lease)
        if released_at is None:
            return False  # finished or taken over meanwhile
        released = released_at
        job_ids = await _dead_job_ids(rt, worker_id, lease, row) if record is None else []
        await _remove_jobs(rt, job_ids)
    # Named after the release, so that a later scan of the still unleased row (its recovery job has
    # not started yet: every worker is busy) names the same job, which arq then does not enqueue again.
    suffix = "r-" + uuid.uuid5(uuid.NAMESPACE_OID, f"{row.id}:{released.isoformat()}").hex[:10]
    job_id = job_id_for(row.id, row.attempt, suffix)
    job = await rt.redis.enqueue_job(
        JOB_FUNCTION,
        str(row.id),
        _job_id=job_id,
        _queue_name=rt.keys.queue,
        _defer_until=_FRONT,
        _expires=_RECOVERY_JOB_EXPIRES,
    )
    if job is None:
        return False  # that recovery job exists already
    await wake(rt.redis, rt.keys, job_id)
    log.warning(
        "generation %s: lease %s released (%s); recovery job %s at the front of the queue%s",
        row.id, lease, why, job_id, f", removed dead job {', '.join(job_ids)}" if job_ids else "",
    )  # fmt: skip
    return True


async def _dead_job_ids(rt: Runtime, worker_id: str, lease: str, row: generation_reads.ActiveRow) -> list[str]:
    """The arq job id a dead worker ran `lease` under, from its last `worker_jobs` record; or, when
    it died before a heartbeat recorded it, the attempt's own job if that is still marked in progress."""
    raw = await rt.redis.get(rt.keys.worker_jobs(worker_id))
    runs: Any = None
    with contextlib.suppress(ValueError, TypeError):
        runs = json.loads(raw) if raw is not None else None
    job_id = runs.get(lease) if isinstance(runs, dict) else None
    if isinstance(job_id, str) and job_id:
        return [job_id]
    job_id = job_id_for(row.id, row.attempt)
    return [job_id] if await rt.redis.exists(in_progress_key_prefix + job_id) else []


async def _remove_jobs(rt: Runtime, job_ids: list[str]) -> None:
    """Remove a killed worker's arq jobs: their queue entry and arq's own keys for them.

    arq would keep them for its job timeout (the in-progress key) and then try the job again; its
    public API has no call for "this job's worker is dead" (`Job.abort` needs a live worker), so
    the keys are deleted by their names, made of arq's public prefixes (`arq.constants`):
    `arq:job:<id>`, `arq:in-progress:<id>`, `arq:retry:<id>`.
    """
    if not job_ids:
        return
    async with rt.redis.pipeline(transaction=True) as pipe:
        pipe.zrem(rt.keys.queue, *job_ids)
        pipe.delete(
            *(
                prefix + job_id
                for job_id in job_ids
                for prefix in (job_key_prefix, in_progress_key_prefix, retry_key_prefix)
            )
        )
        await pipe.execute()
