"""System status: an unhealthy backend's error is a reason people can read, without credentials."""

from __future__ import annotations

import socket

from arq.connections import RedisSettings, create_pool
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comfy.client import ComfyClient
from comfy.fake.server import FakeHandle
from jobs.service.system_status import read_status
from settings import Settings


def _closed_port() -> int:
    with socket.socket() as probe:  # bound and closed again: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_unhealthy_backends_say_why_in_words_without_credentials(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], fake: FakeHandle
) -> None:
    down = f"http://ops:s3cret@127.0.0.1:{_closed_port()}"
    wrong_path = fake.url.replace("http://", "http://ops:s3cret@") + "/not-comfy"  # the fake answers 404 there
    clients = [ComfyClient(down, timeout=5), ComfyClient(wrong_path, timeout=5), ComfyClient(fake.url, timeout=5)]
    redis = await create_pool(RedisSettings.from_dsn(settings.required_redis_url))
    try:
        status = await read_status(settings=settings, sessions=session_factory, redis=redis, clients=clients)
    finally:
        await redis.aclose()
        for client in clients:
            await client.aclose()
    by_url = {backend.url: backend for backend in status.backends}
    assert not by_url[down].healthy
    assert by_url[down].error == "unreachable (cannot connect)"
    assert not by_url[wrong_path].healthy
    assert by_url[wrong_path].error == "HTTP 404 from /system_stats"
    assert by_url[fake.url.rstrip("/")].healthy and by_url[fake.url.rstrip("/")].error is None
    for backend in status.backends:
        assert "s3cret" not in (backend.error or "")
