"""Putting generations on the arq queue, and waking workers so pickup does not wait for a poll."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms

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


# arq's enqueue_job (WATCH, EXISTS, MULTI/EXEC: three round trips) and the wake-up PUBLISH, as one
# script: the same keys and the same serialized job, in one round trip on the mutation's path.
# Optionally the generation's event is published first (on the events channel), in the same trip;
# and before anything, a rate counter is counted and checked (-1: over its limit, nothing done).
_ENQUEUE = """
if ARGV[7] ~= '' then
  local count = redis.call('INCR', KEYS[6])
  if count == 1 then
    redis.call('EXPIRE', KEYS[6], ARGV[8])
  end
  if count > tonumber(ARGV[7]) then
    return -1
  end
end
if ARGV[6] ~= '' then
  redis.call('PUBLISH', KEYS[5], ARGV[6])
end
local created = 0
if redis.call('EXISTS', KEYS[1], KEYS[2]) == 0 then
  redis.call('PSETEX', KEYS[1], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
  created = 1
end
if ARGV[5] ~= '' then
  redis.call('PUBLISH', KEYS[4], ARGV[5])
end
return created
"""
_WAKE = '{"op":"wake"}'
# A RateLimit counted on its own (work that is not a new job's first enqueue, e.g. a retry): 1 when
# within the limit, 0 when over it. Counted either way, as _ENQUEUE counts a refused create.
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

    Without a delay, workers are woken on the control channel (they block on it between polls):
    pickup is a pub/sub hop, not a 0.5 s poll. `event`, an encoded bus event (the QUEUED status the
    caller just committed), is published on the events channel first, in the same round trip.
    With `rate`, its counter is counted first, in the same round trip; over its limit, nothing is
    queued or published and RateLimited is raised.
    """
    job_id = job_id_for(generation_id, attempt, suffix)
    enqueue_time_ms = timestamp_ms()
    score = enqueue_time_ms + (round(defer_s * 1000) if defer_s > 0 else 0)
    job = serialize_job(JOB_FUNCTION, (str(generation_id),), {}, None, enqueue_time_ms, serializer=redis.job_serializer)
    created = await redis.register_script(_ENQUEUE)(
        keys=[
            job_key_prefix + job_id,
            result_key_prefix + job_id,
            keys.queue,
            keys.control,
            keys.events,
            keys.queue if rate is None else rate.key,  # unused without a rate
        ],
        args=[
            score - enqueue_time_ms + redis.expires_extra_ms,
            job,
            score,
            job_id,
            _WAKE if defer_s <= 0 else "",
            event,
            "" if rate is None else rate.limit,
            "" if rate is None else rate.ttl_s,
        ],
    )
    if created == -1:
        raise RateLimited(job_id)
    return bool(created)


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
