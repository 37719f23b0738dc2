"""Recovery: resume generations nobody is working on, found at every heartbeat round.

A worker killed with SIGKILL leaves arq's in-progress key for the job timeout (hours). Each worker
therefore keeps a heartbeat record with a short TTL listing the leases of the jobs it runs
(jobs/worker/heartbeat.py), and every round looks at all active generations of its namespace: one whose
lease belongs to a worker without heartbeat, or to a worker that beats but no longer lists that lease
(its job ended without the final write: the database was unreachable), is an orphan. Its lease is
released, the dead job's arq keys are removed, and a recovery job goes to the front of the queue (ahead
of any backlog); it takes the generation over and resumes from ComfyUI's queue and history instead of
generating again (jobs/worker/claim.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix

from db import generation_reads, transitions
from db.engine import single_statement
from jobs.enqueue import JOB_FUNCTION, enqueue_generation, job_id_for, wake
from jobs.worker.claim import lease_worker
from jobs.worker.runtime import Runtime

__all__ = ["recover_orphans"]

log = logging.getLogger(__name__)

# A job ahead of every other in arq's queue (sorted by due time): arq's own `_defer_until`, in the past.
_FRONT = datetime(2000, 1, 1, tzinfo=UTC)
_RECOVERY_JOB_EXPIRES = timedelta(days=1)


async def recover_orphans(
    runtime: Runtime, *, queued_grace_s: float = 30.0, unlisted_grace_s: float | None = None
) -> int:
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
        unlisted_grace_s = 2 * runtime.settings.worker_heartbeat_s
    namespace = runtime.keys.namespace
    async with single_statement(runtime.sessions) as session:
        active = await generation_reads.active_leases(session, namespace=namespace)
        queued = await generation_reads.stale_queued(
            session, namespace=namespace, updated_before=datetime.now(UTC) - timedelta(seconds=queued_grace_s)
        )
    count = 0
    if active:
        workers = await _worker_records(runtime, {lease_worker(row.lease) for row in active if row.lease})
        for row in active:
            ours = runtime.running.get(row.id)
            if ours is not None and ours.lease == row.lease:
                continue
            if await _recover_active(runtime, row, workers, unlisted_grace_s):
                count += 1
    if queued:
        async with runtime.redis.pipeline(transaction=False) as pipe:
            for row in queued:
                job_id = job_id_for(row.id, row.attempt)
                pipe.exists(job_key_prefix + job_id, in_progress_key_prefix + job_id)
            exists = await pipe.execute()
        for row, found in zip(queued, exists, strict=True):
            if not found and await enqueue_generation(
                runtime.redis, runtime.keys, generation_id=row.id, attempt=row.attempt
            ):
                log.warning("generation %s was QUEUED without a job; re-enqueued", row.id)
                count += 1
    return count


async def _worker_records(runtime: Runtime, worker_ids: set[str]) -> dict[str, dict[str, Any] | None]:
    """Each worker's heartbeat record (None: it stopped beating)."""
    ordered = sorted(worker_ids)
    if not ordered:
        return {}
    raw = await runtime.redis.mget([runtime.keys.worker(w) for w in ordered])
    out: dict[str, dict[str, Any] | None] = {}
    for worker_id, value in zip(ordered, raw, strict=True):
        try:
            out[worker_id] = None if value is None else dict(json.loads(value))
        except (ValueError, TypeError):
            out[worker_id] = {}
    return out


async def _recover_active(
    runtime: Runtime,
    row: generation_reads.ActiveRow,
    workers: dict[str, dict[str, Any] | None],
    unlisted_grace_s: float,
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
        worker_id = lease_worker(lease)
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
        async with single_statement(runtime.sessions) as session:
            released_at = await transitions.release_lease(session, generation_id=row.id, lease=lease)
        if released_at is None:
            return False  # finished or taken over meanwhile
        released = released_at
        job_ids = await _dead_job_ids(runtime, worker_id, lease, row) if record is None else []
        await _remove_jobs(runtime, job_ids)
    # Named after the release, so that a later scan of the still unleased row (its recovery job has
    # not started yet: every worker is busy) names the same job, which arq then does not enqueue again.
    suffix = "r-" + uuid.uuid5(uuid.NAMESPACE_OID, f"{row.id}:{released.isoformat()}").hex[:10]
    job_id = job_id_for(row.id, row.attempt, suffix)
    job = await runtime.redis.enqueue_job(
        JOB_FUNCTION,
        str(row.id),
        _job_id=job_id,
        _queue_name=runtime.keys.queue,
        _defer_until=_FRONT,
        _expires=_RECOVERY_JOB_EXPIRES,
    )
    if job is None:
        return False  # that recovery job exists already
    await wake(runtime.redis, runtime.keys, job_id)
    log.warning(
        "generation %s: lease %s released (%s); recovery job %s at the front of the queue%s",
        row.id, lease, why, job_id, f", removed dead job {', '.join(job_ids)}" if job_ids else "",
    )  # fmt: skip
    return True


async def _dead_job_ids(runtime: Runtime, worker_id: str, lease: str, row: generation_reads.ActiveRow) -> list[str]:
    """The arq job id a dead worker ran `lease` under, from its last `worker_jobs` record; or, when
    it died before a heartbeat recorded it, the attempt's own job if that is still marked in progress."""
    raw = await runtime.redis.get(runtime.keys.worker_jobs(worker_id))
    runs: Any = None
    with contextlib.suppress(ValueError, TypeError):
        runs = json.loads(raw) if raw is not None else None
    job_id = runs.get(lease) if isinstance(runs, dict) else None
    if isinstance(job_id, str) and job_id:
        return [job_id]
    job_id = job_id_for(row.id, row.attempt)
    return [job_id] if await runtime.redis.exists(in_progress_key_prefix + job_id) else []


async def _remove_jobs(runtime: Runtime, job_ids: list[str]) -> None:
    """Remove a killed worker's arq jobs: their queue entry and arq's own keys for them.

    arq would keep them for its job timeout (the in-progress key) and then try the job again; its
    public API has no call for "this job's worker is dead" (`Job.abort` needs a live worker), so
    the keys are deleted by their names, made of arq's public prefixes (`arq.constants`):
    `arq:job:<id>`, `arq:in-progress:<id>`, `arq:retry:<id>`.
    """
    if not job_ids:
        return
    async with runtime.redis.pipeline(transaction=True) as pipe:
        pipe.zrem(runtime.keys.queue, *job_ids)
        pipe.delete(
            *(
                prefix + job_id
                for job_id in job_ids
                for prefix in (job_key_prefix, in_progress_key_prefix, retry_key_prefix)
            )
        )
        await pipe.execute()
