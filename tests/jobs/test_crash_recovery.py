"""A worker process killed mid-job: another worker resumes the same ComfyUI prompt, no second run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comfy.fake.server import FakeHandle
from db.users import create_token, ensure_user
from graph.app import create_app
from jobs.generate import prompt_id_for
from settings import Settings
from tests.stack import CREATE, GENERATION_EVENTS, GraphQLClient, serve

pytestmark = pytest.mark.slow


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFELIGHT_")}
    env.update(
        {
            "DATABASE_URL": settings.database_url or "",
            "REDIS_URL": settings.redis_url or "",
            "COMFYUI_URLS": ",".join(settings.comfyui_urls),
            "SAFELIGHT_NAMESPACE": settings.namespace,
            "SAFELIGHT_STATE_DIR": str(settings.state_dir),
            "SAFELIGHT_STORAGE_DIR": str(settings.images_dir),
            "SAFELIGHT_WORKER_HEARTBEAT_S": "0.5",
            "SAFELIGHT_LOG_LEVEL": "WARNING",
        }
    )
    return env


@asynccontextmanager
async def worker_process(settings: Settings) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "safelight.cli", "worker", env=_env(settings), start_new_session=True
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


@pytest.fixture
async def isolated(
    stack_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[tuple[Settings, GraphQLClient]]:
    """An API on a namespace of its own, so the session's in-process worker never takes these jobs."""
    settings = stack_settings.model_copy(update={"namespace": f"crash-{uuid.uuid4().hex[:8]}"})
    async with session_factory() as session:
        user = await ensure_user(session, name=f"crash-{uuid.uuid4().hex[:8]}")
        token = await create_token(session, user_id=user.id)
        await session.commit()
    async with serve(create_app(settings)) as url:
        client = GraphQLClient(url, token)
        try:
            yield settings, client
        finally:
            await client.aclose()


async def _next_progress(sub: Any, *, min_step: int) -> None:
    while True:
        data = await sub.next(30)
        assert data is not None, "completed before the worker was killed"
        event = data["generationEvents"]
        if event["kind"] == "PROGRESS" and (event["progress"]["step"] or 0) >= min_step:
            return


async def test_worker_killed_mid_job_resumes_without_a_second_execution(
    isolated: tuple[Settings, GraphQLClient], fake: FakeHandle
) -> None:
    settings, client = isolated
    fake.config.step_time = 0.1
    created = await client.query(
        CREATE, {"input": {"prompt": "survive a crash", "width": 64, "height": 64, "steps": 30}}
    )
    gid = created["createGeneration"]["generation"]["id"]
    prompt_id = prompt_id_for(uuid.UUID(gid), 1)
    async with client.subscription(GENERATION_EVENTS, {"id": gid}) as sub:
        async with worker_process(settings) as first:
            await _next_progress(sub, min_step=3)
            first.send_signal(signal.SIGKILL)
            await asyncio.wait_for(first.wait(), 10)
        async with worker_process(settings):
            events = [e["generationEvents"] for e in await sub.collect(wait_s=60)]
    assert events[-1]["status"] == "SUCCEEDED"
    statuses = [e["status"] for e in events if e["kind"] == "STATUS"]
    assert statuses == ["SUCCEEDED"], "recovery takes over the running generation without new states"
    assert fake.fake.stats.executions[prompt_id] == 1, "ComfyUI must run the prompt exactly once"
    assert fake.fake.stats.executions[prompt_id_for(uuid.UUID(gid), 2)] == 0
    images = [e for e in events if e["kind"] == "IMAGE"]
    assert len(images) == 1


async def test_comfyui_down_retries_then_fails_with_a_retryable_error(
    make_client: Callable[..., Awaitable[GraphQLClient]], stack_settings: Settings
) -> None:
    """Every attempt finds the backend unreachable: attempts are recorded, then FAILED (retryable)."""
    settings = stack_settings.model_copy(
        update={"namespace": f"down-{uuid.uuid4().hex[:8]}", "comfyui_urls": ("http://127.0.0.1:9",)}
    )
    from jobs.worker import build_worker

    client = await make_client()
    # The API checks the catalogue on the session's healthy fake; this worker only knows a dead port.
    api_settings = stack_settings.model_copy(update={"namespace": settings.namespace})
    async with serve(create_app(api_settings)) as url:
        api = GraphQLClient(url, client.token)
        created = await api.query(CREATE, {"input": {"prompt": "nowhere to run", "width": 64, "height": 64}})
        gid = created["createGeneration"]["generation"]["id"]
        worker = build_worker(settings, handle_signals=False)
        task = asyncio.create_task(worker.async_run())
        try:
            async with api.subscription(GENERATION_EVENTS, {"id": gid, "after": 0}) as sub:
                events = [e["generationEvents"] for e in await sub.collect(wait_s=60)]
        finally:
            await worker.close()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await api.aclose()
    statuses = [(e["status"], e["attempt"]) for e in events if e["kind"] == "STATUS"]
    assert statuses[-1] == ("FAILED", settings.max_attempts)
    assert [s for s, _ in statuses].count("QUEUED") == settings.max_attempts  # the first plus one per retry
    final = events[-1]["error"]
    assert final["code"] == "BACKEND_UNAVAILABLE"
    assert final["retryable"] is True
