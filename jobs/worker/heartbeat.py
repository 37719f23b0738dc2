"""The heartbeat: each worker says it is alive, and which leases it runs, every `worker_heartbeat_s`.

Recovery (jobs/worker/recovery.py) reads these records: a lease whose worker has no record (killed:
three beats missed) or whose record no longer lists it is an orphan. Each round also follows the
backend list and looks for orphans itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import time
import uuid

from db.reachability import database_unreachable
from jobs.backend_list import read_backend_urls
from jobs.worker.recovery import recover_orphans
from jobs.worker.runtime import Runtime

__all__ = ["VERSION", "beat", "forget", "heartbeat_loop"]

log = logging.getLogger(__name__)

VERSION = "0.1.0"


async def beat(runtime: Runtime, job_ids: dict[uuid.UUID, str] | None = None) -> None:
    """Who this worker is, and the leases (with their arq job ids) it runs right now.

    The record expires after three missed beats. The job ids are also kept under `worker_jobs` for as
    long as arq's in-progress key may live, so that recovery can remove those of a killed worker.
    """
    settings = runtime.settings
    job_ids = job_ids or {}
    runs = {run.lease: job_ids.get(gid, "") for gid, run in list(runtime.running.items())}
    record = {
        "id": runtime.worker_id,
        "version": VERSION,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "concurrency": settings.worker_concurrency,
        "fingerprint": settings.fingerprint(),
        "comfyui_urls": list(runtime.backends.urls),
        "in_flight": [str(gid) for gid in runtime.running],
        "leases": list(runs),
        "beat_at": time.time(),
    }
    ttl_ms = int(settings.worker_heartbeat_s * 3 * 1000)
    jobs_ttl_ms = int((settings.job_timeout_s + 60) * 1000)
    keys = runtime.keys
    async with runtime.redis.pipeline(transaction=False) as pipe:
        pipe.set(keys.worker(runtime.worker_id), json.dumps(record), px=ttl_ms)
        pipe.set(keys.worker_jobs(runtime.worker_id), json.dumps(runs), px=jobs_ttl_ms)
        pipe.zadd(keys.workers, {runtime.worker_id: time.time()})
        await pipe.execute()


async def forget(runtime: Runtime) -> None:
    """A worker stopping cleanly: its records go, so its leases may be taken over at once."""
    keys = runtime.keys
    await runtime.redis.delete(keys.worker(runtime.worker_id), keys.worker_jobs(runtime.worker_id))
    await runtime.redis.zrem(keys.workers, runtime.worker_id)


async def heartbeat_loop(runtime: Runtime, job_ids: dict[uuid.UUID, str]) -> None:
    """Beat, follow the backend list, recover orphans; every `worker_heartbeat_s`, until cancelled."""
    interval = runtime.settings.worker_heartbeat_s
    while True:
        await asyncio.sleep(interval * random.uniform(0.8, 1.0))
        try:
            await beat(runtime, job_ids)
            await _reconcile_backends(runtime)
            await recover_orphans(runtime)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if database_unreachable(exc):
                log.warning("heartbeat round: database unreachable (%s)", exc)
            else:
                log.exception("heartbeat round failed")


async def _reconcile_backends(runtime: Runtime) -> None:
    """The backend list is data (jobs/backend_list.py): follow it without a restart."""
    urls = await read_backend_urls(runtime.redis, runtime.keys, default=runtime.settings.comfyui_urls)
    if set(urls) != set(runtime.backends.urls):
        log.info("backend list changed: %s -> %s", runtime.backends.urls, urls)
        await runtime.backends.reconcile(urls)
