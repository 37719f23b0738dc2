"""Putting generations on the arq queue, and waking workers so pickup does not wait for a poll."""

from __future__ import annotations

import json
import uuid

from arq.connections import ArqRedis

from jobs.keys import Keys

__all__ = ["JOB_FUNCTION", "enqueue_generation", "job_id_for", "request_cancel"]

JOB_FUNCTION = "generate"


def job_id_for(generation_id: uuid.UUID, attempt: int, suffix: str = "") -> str:
    """arq deduplicates on job id: one job per generation attempt (plus recovery jobs)."""
    base = f"gen:{generation_id}:{attempt}"
    return f"{base}:{suffix}" if suffix else base


async def enqueue_generation(
    redis: ArqRedis,
    keys: Keys,
    *,
    generation_id: uuid.UUID,
    attempt: int,
    defer_s: float = 0.0,
    suffix: str = "",
) -> bool:
    """Enqueue the job; False when an identical job is already queued or running."""
    job = await redis.enqueue_job(
        JOB_FUNCTION,
        str(generation_id),
        _job_id=job_id_for(generation_id, attempt, suffix),
        _queue_name=keys.queue,
        _defer_by=defer_s if defer_s > 0 else None,
    )
    if defer_s <= 0:
        # Workers block on this channel between polls: pickup is a pub/sub hop, not a 0.5 s poll.
        await redis.publish(keys.control, '{"op":"wake"}')
    return job is not None


async def request_cancel(redis: ArqRedis, keys: Keys, *, generation_id: uuid.UUID) -> None:
    """Tell whichever worker runs the generation to delete or interrupt its ComfyUI prompt."""
    await redis.publish(keys.control, json.dumps({"op": "cancel", "g": str(generation_id)}))
