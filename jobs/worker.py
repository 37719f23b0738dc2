"""The arq worker: settings, resources built in on_startup, fast pickup, heartbeats, recovery.

Pickup: arq polls its queue every `poll_delay` (0.5 s by default). Safelight's
worker instead blocks on a Redis pub/sub channel between polls; every enqueue
publishes a wake-up on it, so a job starts a pub/sub hop after it is queued.
The poll stays as a fallback (every 0.5 s) for anything a wake-up missed.

Recovery: a worker killed with SIGKILL leaves arq's in-progress key for the job
timeout (hours). Each worker therefore keeps a heartbeat key with a short TTL
and periodically re-enqueues active generations whose owning worker's heartbeat
is gone; the re-run takes over the lease and resumes from ComfyUI's queue and
history instead of generating again.
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
from typing import Any

import uvloop
from arq.connections import RedisSettings, create_pool, log_redis_info
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker, func
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import select

from comfy.templates import load_templates
from db.engine import create_engine, create_session_factory, single_statement
from db.models import Generation
from db.states import Status
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


async def generate(ctx: dict[str, Any], generation_id: str) -> None:
    rt: Runtime = ctx["runtime"]
    generation_context(generation_id)  # arq runs each job in its own task: this tags only its lines
    await run_generation(rt, uuid.UUID(generation_id), attempt_of(str(ctx.get("job_id", ""))))


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
        if self.allow_pick_jobs and free > 0:
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
        functions=[func(generate, name=JOB_FUNCTION, timeout=settings.job_timeout_s, max_tries=1)],
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
    await _beat(rt)
    listener_ready = asyncio.Event()
    ctx["tasks"] = [
        asyncio.create_task(_listen(rt, worker, listener_ready)),
        asyncio.create_task(_heartbeat_loop(rt)),
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
        await rt.redis.delete(rt.keys.worker(rt.worker_id))
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


async def _beat(rt: Runtime) -> None:
    settings = rt.settings
    record = {
        "id": rt.worker_id,
        "version": VERSION,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "concurrency": settings.worker_concurrency,
        "fingerprint": settings.fingerprint(),
        "comfyui_urls": list(rt.backends.urls),
        "in_flight": [str(gid) for gid in rt.running],
        "beat_at": time.time(),
    }
    ttl_ms = int(settings.worker_heartbeat_s * 3 * 1000)
    async with rt.redis.pipeline(transaction=False) as pipe:
        pipe.set(rt.keys.worker(rt.worker_id), json.dumps(record), px=ttl_ms)
        pipe.zadd(rt.keys.workers, {rt.worker_id: time.time()})
        await pipe.execute()


async def _heartbeat_loop(rt: Runtime) -> None:
    interval = rt.settings.worker_heartbeat_s
    while True:
        await asyncio.sleep(interval * random.uniform(0.8, 1.0))
        try:
            await _beat(rt)
            await _reconcile_backends(rt)
            await recover_orphans(rt)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("heartbeat round failed")


async def _reconcile_backends(rt: Runtime) -> None:
    """The backend list is data (jobs/backend_list.py): follow it without a restart."""
    urls = await read_backend_urls(rt.redis, rt.keys, default=rt.settings.comfyui_urls)
    if set(urls) != set(rt.backends.urls):
        log.info("backend list changed: %s -> %s", rt.backends.urls, urls)
        await rt.backends.reconcile(urls)


async def recover_orphans(rt: Runtime, *, queued_grace_s: float = 30.0) -> int:
    """Re-enqueue generations nobody is working on; the number re-enqueued.

    RUNNING/CANCELLING ones whose lease belongs to a worker without heartbeat,
    and QUEUED ones whose arq job is gone (Redis lost its data). Only this namespace's: another
    namespace sharing the database has its own queue, workers and heartbeats, none visible here.
    """
    async with single_statement(rt.sessions) as session:
        rows = (
            await session.execute(
                select(Generation.id, Generation.status, Generation.lease, Generation.attempt, Generation.updated_at)
                .where(
                    Generation.namespace == rt.keys.namespace,
                    Generation.status.in_((Status.RUNNING, Status.CANCELLING, Status.QUEUED)),
                )
                .order_by(Generation.updated_at)
                .limit(200)
            )
        ).all()
    count = 0
    now = time.time()
    for gid, status, lease, attempt, updated_at in rows:
        if status is Status.QUEUED:
            if now - updated_at.timestamp() < queued_grace_s:
                continue
            job_id = job_id_for(gid, attempt)
            exists = await rt.redis.exists(job_key_prefix + job_id, in_progress_key_prefix + job_id)
            if not exists and await enqueue_generation(rt.redis, rt.keys, generation_id=gid, attempt=attempt):
                log.warning("generation %s was QUEUED without a job; re-enqueued", gid)
                count += 1
            continue
        if lease is None or gid in rt.running:
            continue
        if await rt.redis.exists(rt.keys.worker(lease.split("/", 1)[0])):
            continue
        suffix = "r-" + uuid.uuid5(uuid.NAMESPACE_OID, lease).hex[:10]
        if await enqueue_generation(rt.redis, rt.keys, generation_id=gid, attempt=attempt, suffix=suffix):
            log.warning("generation %s: owner of lease %s is gone; recovery enqueued", gid, lease)
            count += 1
    return count
