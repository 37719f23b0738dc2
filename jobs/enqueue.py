"""Putting generations on the arq queue, and waking workers so pickup does not wait for a poll."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta

from arq.connections import ArqRedis

from jobs.bus import BusEvent
from jobs.keys import Keys

__all__ = [
    "JOB_FUNCTION",
    "RateLimit",
    "RateLimited",
    "attempt_of",
    "enqueue_generation",
    "job_id_for",
    "request_cancel",
    "take_rate",
    "wake",
]

JOB_FUNCTION = "generate"


def job_id_for(generation_id: uuid.UUID, attempt: int, suffix: str = "") -> str:
    """arq deduplicates on job id: one job per generation attempt (plus recovery jobs)."""
    base = f"gen:{generation_id}:{attempt}"
    return f"{base}:{suffix}" if suffix else base


def attempt_of(job_id: str) -> int | None:
    """The attempt a `job_id_for` id was made for; None for any other id."""
    parts = job_id.split(":")
    if len(parts) < 3 or parts[0] != "gen" or not parts[2].isdigit():
        return None
    return int(parts[2])


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A counter of one owner's enqueues in a fixed window (a Redis key that expires), and its limit."""

    key: str
    limit: int
    ttl_s: int = 120


class RateLimited(Exception):
    """The enqueue was refused by its RateLimit: nothing was queued or published."""


# Before the job is queued, in one round trip over Safelight's own keys: a rate counter is counted
# and checked (-1: over its limit, nothing done), then the generation's event is published (so that
# it reaches subscribers before anything a worker publishes about the job).
_RATE_THEN_EVENT = """
if ARGV[1] ~= '' then
  local count = redis.call('INCR', KEYS[1])
  if count == 1 then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
  end
  if count > tonumber(ARGV[1]) then
    return -1
  end
end
if ARGV[3] ~= '' then
  redis.call('PUBLISH', KEYS[2], ARGV[3])
end
return 1
"""
# A RateLimit counted on its own (work that is not a new job's first enqueue, e.g. a retry): 1 when
# within the limit, 0 when over it. Counted either way, as enqueue_generation counts a refused create.
_TAKE = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
if count > tonumber(ARGV[1]) then
  return 0
end
return 1
"""


async def take_rate(redis: ArqRedis, rate: RateLimit) -> None:
    """Count one unit of `rate` in one round trip; RateLimited when that goes over its limit."""
    if not await redis.register_script(_TAKE)(keys=[rate.key], args=[rate.limit, rate.ttl_s]):
        raise RateLimited(rate.key)


async def enqueue_generation(
    redis: ArqRedis,
    keys: Keys,
    *,
    generation_id: uuid.UUID,
    attempt: int,
    defer_s: float = 0.0,
    suffix: str = "",
    event: str = "",
    rate: RateLimit | None = None,
) -> bool:
    """Enqueue the job; False when an identical job is already queued or running.

    The job goes through arq's `ArqRedis.enqueue_job` (which deduplicates on the job id). Without
    a delay, workers are then woken on the control channel (`wake`): pickup is a pub/sub hop, not
    the wait for a poll. `event`, an encoded bus event (the QUEUED status the caller just committed),
    is published on the events channel before the job is queued. With `rate`, its counter is counted
    first, in the same round trip as the event; over its limit, nothing is queued or published and
    RateLimited is raised.
    """
    job_id = job_id_for(generation_id, attempt, suffix)
    if rate is not None or event:
        counted = await redis.register_script(_RATE_THEN_EVENT)(
            keys=[keys.events if rate is None else rate.key, keys.events],
            args=["" if rate is None else rate.limit, "" if rate is None else rate.ttl_s, event],
        )
        if counted == -1:
            raise RateLimited(job_id)
    job = await redis.enqueue_job(
        JOB_FUNCTION,
        str(generation_id),
        _job_id=job_id,
        _queue_name=keys.queue,
        _defer_by=timedelta(seconds=defer_s) if defer_s > 0 else None,
    )
    if job is None:
        return False
    if defer_s <= 0:
        await wake(redis, keys, job_id)
    return True


async def wake(redis: ArqRedis, keys: Keys, job_id: str) -> None:
    """Tell the workers a job is due now: one with a free slot starts it at once (arq's
    `Worker.start_jobs`), ahead of its next poll of the queue."""
    await redis.publish(keys.control, json.dumps({"op": "wake", "job": job_id}))


async def request_cancel(
    redis: ArqRedis, keys: Keys, *, generation_id: uuid.UUID, event: BusEvent | None = None
) -> None:
    """Tell whichever worker runs the generation to delete or interrupt its ComfyUI prompt.

    With `event` (the CANCELLING status just committed), it is published on the events channel
    first, in the same round trip.
    """
    control = json.dumps({"op": "cancel", "g": str(generation_id)})
    if event is None:
        await redis.publish(keys.control, control)
        return
    async with redis.pipeline(transaction=False) as pipe:
        pipe.publish(keys.events, event.encode())
        pipe.publish(keys.control, control)
        await pipe.execute()
