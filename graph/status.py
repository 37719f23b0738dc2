"""System status in the schema (admins only): queue, workers, backends, recent outcomes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import strawberry

from graph.context import Context, NotAuthenticated
from jobs.service import system_status
from settings import redact_userinfo

__all__ = ["SystemStatusType", "resolve_system_status", "watch_system_status"]


@strawberry.type
class WorkerInfo:
    id: str
    version: str
    host: str
    pid: int
    concurrency: int
    fingerprint: str
    settings_match: bool = strawberry.field(description="False: this worker runs with settings other than the API's.")
    comfyui_urls: list[str]
    in_flight: list[str] = strawberry.field(description="Generation ids this worker is running.")
    last_beat: float


@strawberry.type
class GpuDevice:
    name: str
    vram_total: float
    vram_free: float


@strawberry.type
class BackendInfo:
    url: str
    healthy: bool
    error: str | None
    running: int
    pending: int
    comfyui_version: str | None
    devices: list[GpuDevice]


@strawberry.type(name="SystemStatus")
class SystemStatusType:
    """The GraphQL view of `system_status.SystemReport` (its durations in seconds, its names the schema's)."""

    fingerprint: str = strawberry.field(description="The API's settings fingerprint; workers should match it.")
    queued: int
    running: int
    oldest_queued_seconds: float | None
    arq_queue_depth: int
    succeeded_last_hour: int
    failed_last_hour: int
    cancelled_last_hour: int
    workers: list[WorkerInfo]
    backends: list[BackendInfo]

    @classmethod
    def from_report(cls, report: system_status.SystemReport) -> SystemStatusType:
        return cls(
            fingerprint=report.fingerprint,
            queued=report.queued,
            running=report.running,
            oldest_queued_seconds=report.oldest_queued_s,
            arq_queue_depth=report.arq_queue_depth,
            succeeded_last_hour=report.succeeded_last_hour,
            failed_last_hour=report.failed_last_hour,
            cancelled_last_hour=report.cancelled_last_hour,
            workers=[
                WorkerInfo(
                    id=worker.id,
                    version=worker.version,
                    host=worker.host,
                    pid=worker.pid,
                    concurrency=worker.concurrency,
                    fingerprint=worker.fingerprint,
                    settings_match=worker.settings_match,
                    comfyui_urls=[redact_userinfo(url) for url in worker.comfyui_urls],
                    in_flight=list(worker.in_flight),
                    last_beat=worker.last_beat,
                )
                for worker in report.workers
            ],
            backends=[
                BackendInfo(
                    url=redact_userinfo(backend.url),
                    healthy=backend.healthy,
                    error=None if backend.error is None else redact_userinfo(backend.error),
                    running=backend.running,
                    pending=backend.pending,
                    comfyui_version=backend.comfyui_version,
                    devices=[
                        GpuDevice(name=d.name, vram_total=d.vram_total, vram_free=d.vram_free) for d in backend.devices
                    ],
                )
                for backend in report.backends
            ],
        )


async def _read(info: strawberry.Info[Context, None]) -> SystemStatusType:
    if not info.context.viewer.is_admin:
        raise NotAuthenticated("system status is for admins")
    state = info.context.state
    await state.catalogs.get()  # brings the API's backend clients up to date with the list in force
    report = await system_status.read_status(
        settings=state.settings, sessions=state.sessions, redis=state.redis, clients=state.catalogs.clients
    )
    return SystemStatusType.from_report(report)


async def resolve_system_status(info: strawberry.Info[Context, None]) -> SystemStatusType:
    return await _read(info)


async def watch_system_status(
    info: strawberry.Info[Context, None], interval_seconds: float = 2.0
) -> AsyncGenerator[SystemStatusType, None]:
    interval = min(max(interval_seconds, 0.5), 60.0)
    previous = None
    while True:
        current = await _read(info)
        if current != previous:
            yield current
            previous = current
        await asyncio.sleep(interval)
