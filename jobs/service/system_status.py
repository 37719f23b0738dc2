"""System status for operators: queue, workers (as they report themselves), backends, outcomes.

Workers publish a heartbeat record with the settings fingerprint and ComfyUI
URLs they actually use; a worker whose fingerprint differs from the API's is
flagged here instead of silently serving jobs with other settings.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comfy.client import ComfyClient
from comfy.errors import ComfyError
from db.system_counts import generation_counts
from jobs.keys import Keys
from settings import Settings, redact_userinfo

__all__ = ["BackendStatus", "SystemReport", "WorkerStatus", "read_status", "waiting_jobs"]


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    id: str
    version: str
    host: str
    pid: int
    concurrency: int
    fingerprint: str
    settings_match: bool
    comfyui_urls: tuple[str, ...]
    in_flight: tuple[str, ...]
    last_beat: float


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    vram_total: int
    vram_free: int


@dataclass(frozen=True, slots=True)
class BackendStatus:
    url: str
    healthy: bool
    error: str | None = None
    running: int = 0
    pending: int = 0
    comfyui_version: str | None = None
    devices: tuple[Device, ...] = ()


@dataclass(frozen=True, slots=True)
class SystemReport:
    fingerprint: str
    queued: int
    running: int
    oldest_queued_s: float | None
    arq_queue_depth: int  # jobs waiting in arq's queue: not those a worker runs (or a dead one ran)
    succeeded_last_hour: int
    failed_last_hour: int
    cancelled_last_hour: int
    workers: tuple[WorkerStatus, ...] = field(default=())
    backends: tuple[BackendStatus, ...] = field(default=())


async def read_status(
    *,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    clients: Sequence[ComfyClient],
) -> SystemReport:
    keys = Keys(settings.namespace)
    fingerprint = settings.fingerprint()
    workers, backends, counts, depth = await asyncio.gather(
        _workers(redis, keys, fingerprint),
        asyncio.gather(*(_backend(c) for c in clients)),
        _counts(sessions),
        waiting_jobs(redis, keys),
    )
    return SystemReport(
        fingerprint=fingerprint,
        arq_queue_depth=int(depth),
        workers=tuple(workers),
        backends=tuple(backends),
        **counts,
    )


# arq keeps a job in its queue (a sorted set) while it runs, marked by its in-progress key; a job
# whose worker was killed stays there, marked, until recovery removes it. Waiting = members without
# that mark. Running jobs were due before any job still waiting, so they are among the first by score:
# only the first ARGV[2] are looked at (the rest count as waiting).
_WAITING = """
local total = redis.call('ZCARD', KEYS[1])
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
local busy = 0
for i = 1, #ids do
  if redis.call('EXISTS', ARGV[1] .. ids[i]) == 1 then
    busy = busy + 1
  end
end
return total - busy
"""
_WAITING_SCAN = 10_000


async def waiting_jobs(redis: ArqRedis, keys: Keys) -> int:
    """Jobs truly queued in arq's queue: its members that no worker has in progress."""
    return int(await redis.register_script(_WAITING)(keys=[keys.queue], args=[in_progress_key_prefix, _WAITING_SCAN]))


async def _workers(redis: ArqRedis, keys: Keys, fingerprint: str) -> list[WorkerStatus]:
    ids = [i.decode() if isinstance(i, bytes) else str(i) for i in await redis.zrange(keys.workers, 0, -1)]
    if not ids:
        return []
    records = await redis.mget([keys.worker(i) for i in ids])
    gone = [i for i, raw in zip(ids, records, strict=True) if raw is None]
    if gone:
        await redis.zrem(keys.workers, *gone)
    out = []
    for raw in records:
        if raw is None:
            continue
        data: dict[str, Any] = json.loads(raw)
        out.append(
            WorkerStatus(
                id=str(data["id"]),
                version=str(data.get("version", "")),
                host=str(data.get("host", "")),
                pid=int(data.get("pid", 0)),
                concurrency=int(data.get("concurrency", 0)),
                fingerprint=str(data.get("fingerprint", "")),
                settings_match=data.get("fingerprint") == fingerprint,
                comfyui_urls=tuple(data.get("comfyui_urls", ())),
                in_flight=tuple(data.get("in_flight", ())),
                last_beat=float(data.get("beat_at", 0.0)),
            )
        )
    return out


async def _backend(client: ComfyClient) -> BackendStatus:
    try:
        stats, queue = await asyncio.gather(client.system_stats(), client.queue())
    except ComfyError as exc:
        return BackendStatus(url=client.base_url, healthy=False, error=redact_userinfo(exc.reason))
    return BackendStatus(
        url=client.base_url,
        healthy=True,
        running=len(queue.running),
        pending=len(queue.pending),
        comfyui_version=stats.comfyui_version,
        devices=tuple(Device(d.name, d.vram_total, d.vram_free) for d in stats.devices),
    )


async def _counts(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    async with sessions() as session:
        counts = await generation_counts(session, finished_since=datetime.now(UTC) - timedelta(hours=1))
    oldest = counts.oldest_queued_at
    return {
        "queued": counts.queued,
        "running": counts.running,
        "oldest_queued_s": None if oldest is None else max(0.0, time.time() - oldest.timestamp()),
        "succeeded_last_hour": counts.succeeded,
        "failed_last_hour": counts.failed,
        "cancelled_last_hour": counts.cancelled,
    }
