"""The arq worker application: its job function, its settings, and the resources its jobs share.

`build_worker(settings)` is what `safelight worker` runs (`run_worker`), what the dev stack starts and
what the tests run in burst mode. Resources are built in arq's `on_startup` (the `Runtime`, the control
listener and the heartbeat) and released in `on_shutdown`; nothing is built at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from datetime import timedelta
from typing import Any

import uvloop
from arq.connections import ArqRedis
from arq.worker import Retry, func
from redis.asyncio import ConnectionPool
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.engine import create_engine, create_session_factory
from db.reachability import database_unreachable
from jobs.backends import BackendPool
from jobs.enqueue import JOB_FUNCTION, attempt_of
from jobs.keys import Keys
from jobs.logs import configure_logging, generation_context
from jobs.storage import ImageStore
from jobs.templates import TemplateRegistry, sync_template_files
from jobs.worker.arq_worker import SafelightWorker
from jobs.worker.control import listen
from jobs.worker.heartbeat import beat, forget, heartbeat_loop
from jobs.worker.run import run_generation
from jobs.worker.runtime import Runtime
from settings import Settings

__all__ = ["build_worker", "run_worker"]

log = logging.getLogger(__name__)

# arq's tries of one job (not generation attempts): a job is tried again only when it raises Retry
# (its claim found the database unreachable) or when a stopping worker cancelled it.
_MAX_JOB_TRIES = 1000
_REDIS_TIMEOUT_S = 5.0


async def generate(ctx: dict[str, Any], generation_id: str) -> None:
    """The job function: run one generation (jobs receive ids, never objects)."""
    runtime: Runtime = ctx["runtime"]
    worker: SafelightWorker = ctx["worker"]
    job_id = str(ctx.get("job_id", ""))
    gid = uuid.UUID(generation_id)
    generation_context(generation_id)  # arq runs each job in its own task: this tags only its lines
    worker.job_ids[gid] = job_id
    task = asyncio.current_task()
    if task is not None:
        worker.job_functions[job_id] = task
    try:
        await run_generation(runtime, gid, attempt_of(job_id))
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


async def _job_started(ctx: dict[str, Any]) -> None:
    worker: SafelightWorker = ctx["worker"]
    worker.job_started()


async def _job_ended(ctx: dict[str, Any]) -> None:
    worker: SafelightWorker = ctx["worker"]
    worker.job_ended()


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
    # a PUBLISH per progress message out), where it costs less CPU than asyncio's own loop.
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
    sessions = create_session_factory(engine)
    keys = Keys(settings.namespace)
    templates = TemplateRegistry(sessions=sessions, redis=ctx["redis"], keys=keys)
    synced = await _sync_templates(settings, sessions, templates)
    runtime = Runtime(
        settings=settings,
        sessions=sessions,
        redis=ctx["redis"],
        keys=keys,
        backends=backends,
        store=ImageStore(settings.images_dir),
        templates=templates,
        worker_id=worker_id,
    )
    ctx["runtime"] = runtime
    ctx["engine"] = engine
    await backends.reconcile(settings.comfyui_urls)
    await beat(runtime, worker.job_ids)
    listener_ready = asyncio.Event()
    ctx["tasks"] = [
        asyncio.create_task(listen(runtime, worker, listener_ready)),
        asyncio.create_task(heartbeat_loop(runtime, worker.job_ids)),
    ]
    if not synced:
        ctx["tasks"].append(asyncio.create_task(_sync_templates_later(settings, sessions, templates)))
    await asyncio.wait_for(listener_ready.wait(), 10)
    log.info("worker %s ready: backends %s, concurrency %d", worker_id, backends.urls, settings.worker_concurrency)


async def _sync_templates(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], templates: TemplateRegistry
) -> bool:
    """The template files as versions in the database (a new version: running APIs reload); False while
    the database is unreachable. A worker starts without it: its jobs wait for the database anyway, and
    a generation names the version it runs, which the API recorded."""
    try:
        if await sync_template_files(sessions, settings.template_dirs):
            await templates.announce()
    except Exception as exc:
        if not database_unreachable(exc):
            raise
        log.warning("template files not synced: database unreachable (%s); trying again", exc)
        return False
    return True


async def _sync_templates_later(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], templates: TemplateRegistry
) -> None:
    delay = 0.5
    while not await _sync_templates(settings, sessions, templates):
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))
        delay = min(delay * 2, 10.0)


async def _shutdown(ctx: dict[str, Any]) -> None:
    runtime: Runtime | None = ctx.get("runtime")
    for task in ctx.get("tasks", []):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if runtime is not None:
        await forget(runtime)  # stopping cleanly: our leases may be taken over at once
        await runtime.backends.close()
    engine = ctx.get("engine")
    if engine is not None:
        await engine.dispose()
