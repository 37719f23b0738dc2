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
from jobs.worker.submit import prompt_id_for
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
    """ComfyUI (upstream) sends the prompt's progress only to the socket of the client id that submitted
    it: the survivor follows the prompt under that id and relays every step from then on."""
    settings, client = isolated
    fake.config.step_time = 0.1
    created = await client.query(
        CREATE, {"input": {"prompt": "survive a crash", "width": 64, "height": 64, "steps": 60}}
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
    assert events[-1]["error"] is None
    statuses = [e["status"] for e in events if e["kind"] == "STATUS"]
    assert statuses == ["SUCCEEDED"], "recovery takes over the running generation without new states"
    assert fake.fake.stats.executions[prompt_id] == 1, "ComfyUI must run the prompt exactly once"
    assert fake.fake.stats.executions[prompt_id_for(uuid.UUID(gid), 2)] == 0
    images = [e for e in events if e["kind"] == "IMAGE"]
    assert len(images) == 1
    progress = [e["progress"] for e in events if e["kind"] == "PROGRESS"]
    assert "BACKEND_QUEUE" not in [p["phase"] for p in progress], "a running prompt is never shown as queued"
    steps = [p["step"] for p in progress if p["phase"] == "EXECUTING" and p["step"] is not None]
    assert steps, "the survivor relays live progress"
    assert steps == list(range(steps[0], 61)), "every step from the first one heard after the takeover"
    percents = [p["percent"] for p in progress]
    assert percents == sorted(percents), "nothing drops back to 0 % after the takeover"


async def test_a_pending_prompt_of_a_dead_worker_is_sent_again_under_the_survivors_client_id(
    isolated: tuple[Settings, GraphQLClient], fake: FakeHandle
) -> None:
    """The dead worker's second prompt still waits in ComfyUI's queue: the survivor takes it back and submits
    it under its own client id (same prompt id, same place), so its progress is live; it runs once."""
    settings, client = isolated
    fake.config.step_time = 0.1
    query = {"input": {"prompt": "crash 1", "width": 64, "height": 64, "steps": 100}}
    running = (await client.query(CREATE, query))["createGeneration"]["generation"]["id"]
    async with (
        contextlib.AsyncExitStack() as stack,
        client.subscription(GENERATION_EVENTS, {"id": running}) as first_sub,
    ):
        async with worker_process(settings) as first:
            await _next_progress(first_sub, min_step=3)  # the first runs: the second queues behind it
            query = {"input": {"prompt": "crash 2", "width": 64, "height": 64, "steps": 10}}
            waiting = (await client.query(CREATE, query))["createGeneration"]["generation"]["id"]
            pending_prompt = prompt_id_for(uuid.UUID(waiting), 1)
            second_sub = await stack.enter_async_context(client.subscription(GENERATION_EVENTS, {"id": waiting}))
            while True:
                data = await second_sub.next(30)
                assert data is not None
                progress = data["generationEvents"]["progress"] or {}
                if progress.get("phase") == "BACKEND_QUEUE" and progress.get("queuePosition"):
                    break
            first.send_signal(signal.SIGKILL)
            await asyncio.wait_for(first.wait(), 10)
        async with worker_process(settings):
            events = [e["generationEvents"] for e in await second_sub.collect(wait_s=60)]
            assert (await first_sub.collect(wait_s=60))[-1]["generationEvents"]["status"] == "SUCCEEDED"
    assert events[-1]["status"] == "SUCCEEDED", events[-1]
    assert fake.fake.stats.executions[pending_prompt] == 1
    taken_back = [e for e in fake.fake.stats.events if e["event"] == "delete" and pending_prompt in e["deleted"]]
    assert len(taken_back) == 1
    steps = [e["progress"]["step"] for e in events if e["kind"] == "PROGRESS" and e["progress"]["step"]]
    assert steps == list(range(1, 11)), "every step live, under the survivor's client id"


async def test_comfyui_down_waits_then_fails_without_using_attempts(
    make_client: Callable[..., Awaitable[GraphQLClient]], stack_settings: Settings
) -> None:
    """The only backend never answers: the generation waits in BACKEND_WAIT (reason, next try, deadline),
    then FAILED with BACKEND_UNAVAILABLE after the deadline, on its first attempt."""
    settings = stack_settings.model_copy(
        update={
            "namespace": f"down-{uuid.uuid4().hex[:8]}",
            "comfyui_urls": ("http://127.0.0.1:9",),
            "backend_wait_s": 1.5,
        }
    )
    from jobs.worker.app import build_worker

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
            async with api.subscription(WAIT_EVENTS, {"id": gid}) as sub:
                events = [e["generationEvents"] for e in await sub.collect(wait_s=60)]
        finally:
            await worker.close()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await api.aclose()
    statuses = [(e["status"], e["attempt"]) for e in events if e["kind"] == "STATUS"]
    assert statuses == [("QUEUED", 1), ("RUNNING", 1), ("FAILED", 1)]
    waits = [e for e in events if e["kind"] == "PROGRESS" and e["progress"]["phase"] == "BACKEND_WAIT"]
    assert waits, events
    first = waits[0]["progress"]
    assert first["reason"] and "127.0.0.1:9" in first["reason"], first
    assert waits[0]["at"] <= first["retryAt"] <= first["deadlineAt"]
    final = events[-1]
    assert final["at"] >= first["deadlineAt"]
    assert final["error"]["code"] == "BACKEND_UNAVAILABLE"
    assert final["error"]["retryable"] is True


WAIT_EVENTS = """
subscription($id: ID!) { generationEvents(id: $id, after: 0) {
  kind at status attempt error { code message retryable } progress { phase reason retryAt deadlineAt }
} }
"""
