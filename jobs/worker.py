"""The arq worker: settings, resources built in on_startup, fast pickup, heartbeats, recovery.

Pickup: arq polls its queue every `poll_delay` (0.5 s by default). Safelight's
worker instead blocks on a Redis pub/sub channel between polls; every enqueue
publishes a wake-up on it, so a job starts a pub/sub hop after it is queued.
The poll stays as a fallback (every 0.5 s) for anything a wake-up missed.

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
import signal
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import uvloop
from arq.connections import RedisSettings, create_pool, log_redis_info
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Retry, Worker, func
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from comfy.templates import load_templates
from db import generations as gens
from db.engine import create_engine, create_session_factory, single_statement
from db.reachability import database_unreachable
from jobs.backend_list import read_backend_urls
from jobs.backends import BackendPool
from jobs.enqueue import JOB_FUNCTION, attempt_of, enqueue_generation, job_id_for
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


async def generate(ctx: dict[str, Any], generation_id: str) -> None:
    rt: Runtime = ctx["runtime"]
    worker: SafelightWorker = ctx["worker"]
    job_id = str(ctx.get("job_id", ""))
    gid = uuid.UUID(generation_id)
    generation_context(generation_id)  # arq runs each job in its own task: this tags only its lines
    worker.job_ids[gid] = job_id
    try:
        await run_generation(rt, gid, attempt_of(job_id))
    except Exception as exc:
        if not database_unreachable(exc):
            raise
        # PostgreSQL is unreachable (the claim, or a final write: then recovery resumes the
        # generation once its lease is seen without a job). Try this job again later, not as an
        # attempt, and stop taking new jobs for a while rather than failing the whole queue.
        delay = worker.database_down()
        log.warning("generation %s: database unreachable (%s); job retried in %.1fs", gid, exc, delay)
        raise Retry(defer=timedelta(seconds=delay)) from None
    else:
        worker.database_up()
    finally:
        if worker.job_ids.get(gid) == job_id:
            del worker.job_ids[gid]


# arq's poll (ZRANGEBYSCORE of the due jobs) and start (for each: skip it when in progress already,
# else mark it in progress), as one script: at most ARGV[6] jobs started. Returns job id, score pairs.
_POLL_AND_START = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', ARGV[4], ARGV[5])
local out = {}
local free = tonumber(ARGV[6])
for i = 1, #due, 2 do
  if free <= 0 then
    break
  end
  local in_progress = ARGV[3] .. due[i]
  if redis.call('EXISTS', in_progress) == 0 then
    redis.call('PSETEX', in_progress, ARGV[2], '1')
    out[#out + 1] = due[i]
    out[#out + 1] = due[i + 1]
    free = free - 1
  end
end
return out
"""


class SafelightWorker(Worker):
    """arq's Worker, woken by pub/sub instead of waiting for its next poll."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wake = asyncio.Event()
        self._closing = False
        # The arq job id each running generation came with (the heartbeat lists them for recovery).
        self.job_ids: dict[uuid.UUID, str] = {}
        self._db_failures = 0
        self._paused_until = 0.0

    def database_down(self) -> float:
        """A job found the database unreachable: pause picking up jobs (growing); the delay to retry it."""
        self._db_failures += 1
        pause = min(_DB_PAUSE_MAX_S, _DB_PAUSE_MIN_S * 2.0 ** min(self._db_failures - 1, 16))
        self._paused_until = max(self._paused_until, time.monotonic() + pause)
        return pause * random.uniform(1.0, 1.5)

    def database_up(self) -> None:
        self._db_failures = 0

    async def _poll_iteration(self) -> None:
        """arq's poll iteration with one round trip to find and claim due jobs, not 1 + 4 per job.

        arq reads the due job ids, then checks and marks each in progress with WATCH, EXISTS,
        ZSCORE and MULTI/EXEC, one job after another; `_POLL_AND_START` does the same atomically.
        """
        count = self.queue_read_limit
        if self.burst and self.max_burst_jobs >= 0:
            remaining = self.max_burst_jobs - self._jobs_started()
            if remaining < 1:
                return
            count = min(remaining, count)
        free = self.max_jobs - self.job_counter
        if self.allow_pick_jobs and free > 0 and time.monotonic() >= self._paused_until:
            started = await self.pool.register_script(_POLL_AND_START)(
                keys=[self.queue_name],
                args=[
                    timestamp_ms(),
                    int(self.in_progress_timeout_s * 1000),
                    in_progress_key_prefix,
                    self._queue_read_offset,
                    count,
                    free,
                ],
            )
            for index in range(0, len(started), 2):
                await self._start(started[index].decode(), int(float(started[index + 1])))
        if self.allow_abort_jobs:
            await self._cancel_aborted_jobs()
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # as arq does: errors in run_job propagate
        await self.heart_beat()

    async def _start(self, job_id: str, score: int) -> None:
        await self.sem.acquire()  # free slot: does not wait
        self.job_counter += 1
        task = self.loop.create_task(self.run_job(job_id, score))
        task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
        self.tasks[job_id] = task

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self.wake.set()  # a slot freed: look for the next job now, not at the next poll

    async def close(self) -> None:
        """arq's close, with redis-py 5's aclose() instead of the deprecated close().

        Jobs still running are cancelled (their leases are taken over once the heartbeat is gone);
        their cancellation is expected here and must not skip the shutdown that follows.
        """
        self._closing = True
        self.wake.set()
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        main = self.main_task
        if main is not None and main is not asyncio.current_task() and not main.done():
            # Its cancel can be lost (Python 3.11's wait_for returns a wake-up that raced with it);
            # `_closing` ends the loop at its next turn, before the pool below goes away.
            await asyncio.wait([main])
        await self.pool.delete(self.health_check_key)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.aclose(close_connection_pool=True)
        self._pool = None

    async def main(self) -> None:
        if self._pool is None:
            self._pool = await create_pool(
                self.redis_settings,
                job_deserializer=self.job_deserializer,
                job_serializer=self.job_serializer,
                default_queue_name=self.queue_name,
                expires_extra_ms=self.expires_extra_ms,
            )
        await log_redis_info(self.pool, log.info)
        self.ctx["redis"] = self.pool
        self.ctx["worker"] = self
        if self.on_startup:
            await self.on_startup(self.ctx)
        while not self._closing:
            self.wake.clear()
            try:
                await self._poll_iteration()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                # Redis restarting: running jobs go on (they only need PostgreSQL and ComfyUI);
                # polling resumes when it answers again.
                log.warning("queue unavailable (%s); retrying", exc)
                await asyncio.sleep(0.5)
                continue
            if self.burst:
                if 0 <= self.max_burst_jobs <= self._jobs_started():
                    await asyncio.gather(*self.tasks.values())
                    return
                if await self.pool.zcard(self.queue_name) == 0 and not self.tasks:
                    return
            if self.job_counter >= self.max_jobs:
                await self.wake.wait()  # no free slot: a finishing job wakes us
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.poll_delay_s)


def build_worker(settings: Settings, *, burst: bool = False, handle_signals: bool = True) -> SafelightWorker:
    keys = Keys(settings.namespace)
    return SafelightWorker(
        functions=[func(generate, name=JOB_FUNCTION, timeout=settings.job_timeout_s, max_tries=_MAX_JOB_TRIES)],
        redis_settings=RedisSettings.from_dsn(settings.required_redis_url),
        queue_name=keys.queue,
        max_jobs=settings.worker_concurrency,
        job_timeout=settings.job_timeout_s,
        keep_result=0,
        poll_delay=0.5,
        burst=burst,
        handle_signals=handle_signals,
        on_startup=_startup,
        on_shutdown=_shutdown,
        ctx={"settings": settings},
    )


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
            ready.set()
            worker.wake.set()  # anything enqueued while we were not listening
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
        worker.wake.set()
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
        active = await gens.active_leases(session, namespace=namespace)
        queued = await gens.stale_queued(
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
    rt: Runtime, row: gens.ActiveRow, workers: dict[str, dict[str, Any] | None], unlisted_grace_s: float
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
            released_at = await gens.release_lease(session, generation_id=row.id, lease=lease)
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
    await rt.redis.publish(rt.keys.control, '{"op":"wake"}')
    log.warning(
        "generation %s: lease %s released (%s); recovery job %s at the front of the queue%s",
        row.id, lease, why, job_id, f", removed dead job {', '.join(job_ids)}" if job_ids else "",
    )  # fmt: skip
    return True


async def _dead_job_ids(rt: Runtime, worker_id: str, lease: str, row: gens.ActiveRow) -> list[str]:
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
