"""Redis restarted mid-run: the job finishes, the subscriber still gets every durable event and the end."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comfy.fake.server import FakeHandle
from db.users import create_token, ensure_user
from graph.app import create_app
from jobs.worker.app import build_worker
from jobs.worker.submit import prompt_id_for
from safelight.embedded import EmbeddedRedis
from settings import Settings
from tests.stack import CREATE, GENERATION_EVENTS, GraphQLClient, serve

pytestmark = pytest.mark.slow


@pytest.fixture
def own_redis() -> AsyncIterator[EmbeddedRedis]:
    root = Path(tempfile.mkdtemp(prefix="safelight-redis-restart-"))
    with socket.socket() as probe:  # a fixed port, so the restarted server is where clients reconnect
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    redis = EmbeddedRedis(root, port=port)
    redis.start()
    try:
        yield redis  # type: ignore[misc]
    finally:
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)


async def test_redis_restart_mid_run_loses_nothing_durable(
    own_redis: EmbeddedRedis,
    stack_settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    fake: FakeHandle,
) -> None:
    settings = stack_settings.model_copy(update={"redis_url": own_redis.url, "namespace": "restart"})
    async with session_factory() as session:
        user = await ensure_user(session, name=f"restart-{uuid.uuid4().hex[:8]}")
        token = await create_token(session, user_id=user.id)
        await session.commit()
    fake.config.step_time = 0.05
    worker = build_worker(settings, handle_signals=False)
    worker_task = asyncio.create_task(worker.async_run())
    try:
        async with serve(create_app(settings)) as url:
            client = GraphQLClient(url, token)
            try:
                request = {"prompt": "weather the storm", "width": 64, "height": 64, "steps": 40, "batchSize": 2}
                created = await client.query(CREATE, {"input": request})
                gid = created["createGeneration"]["generation"]["id"]
                async with client.subscription(GENERATION_EVENTS, {"id": gid}) as sub:
                    while True:  # wait until it runs on ComfyUI
                        data = await sub.next(30)
                        assert data is not None
                        if (data["generationEvents"]["progress"] or {}).get("step"):
                            break
                    await asyncio.to_thread(own_redis.stop)
                    await asyncio.sleep(0.5)
                    await asyncio.to_thread(own_redis.start)
                    events = [e["generationEvents"] for e in await sub.collect(wait_s=60)]
            finally:
                await client.aclose()
    finally:
        await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await worker_task
    assert events[-1]["status"] == "SUCCEEDED"
    assert events[-1]["terminal"] is True
    images = sorted(e["image"]["index"] for e in events if e["kind"] == "IMAGE")
    assert images == [0, 1]
    assert fake.fake.stats.executions[prompt_id_for(uuid.UUID(gid), 1)] == 1
