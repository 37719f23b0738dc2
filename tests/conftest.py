"""Session-wide services: a fresh, migrated PostgreSQL database and a Redis namespace.

PostgreSQL and Redis come from DATABASE_URL / REDIS_URL when set (CI and this
machine have both running); otherwise the embedded servers are started under a
temporary directory. Each session creates its own database, migrates it, and
drops it at the end; Redis keys live under a namespace unique to the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bench.proxy import CuttableProxy, cuttable_proxy
from comfy.fake.server import FakeConfig, FakeHandle, running_fake
from db.engine import create_engine, create_session_factory
from db.migrate import upgrade
from settings import Settings, load_settings

if TYPE_CHECKING:
    from tests.stack import GraphQLClient


@pytest.fixture(scope="session")
def _services() -> Iterator[tuple[str, str]]:
    """(server-level PostgreSQL URL, Redis URL)."""
    pg_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    with ExitStack() as stack:
        if pg_url is None or redis_url is None:
            from safelight.embedded import EmbeddedPostgres, EmbeddedRedis

            # Not under pytest's tmp_path: another pytest session resets that to 0700, which
            # would lock out embedded PostgreSQL's own system user mid-run (see DEVELOPERS.md).
            root = Path(tempfile.mkdtemp(prefix="safelight-test-"))
            stack.callback(shutil.rmtree, root, ignore_errors=True)
            if pg_url is None:
                postgres = EmbeddedPostgres(root / "postgres")
                pg_url = postgres.start()
                stack.callback(postgres.stop)
            if redis_url is None:
                redis = EmbeddedRedis(root / "redis")
                redis_url = redis.start()
                stack.callback(redis.stop)
        yield pg_url, redis_url


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def database_url(_services: tuple[str, str]) -> Iterator[str]:
    server_url, _ = _services
    name = f"safelight_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(_plain(server_url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = _with_database(server_url, name)
    upgrade(load_settings(database_url=url))
    try:
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url(_services: tuple[str, str]) -> str:
    return _services[1]


@pytest.fixture(scope="session")
def namespace() -> str:
    return f"sltest-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    state = tmp_path_factory.mktemp("state")
    return load_settings(
        database_url=database_url,
        redis_url=redis_url,
        namespace=namespace,
        state_dir=state,
        storage_dir=Path(state) / "images",
        comfyui_urls=(),
        dev_mode=False,
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


@pytest.fixture
async def session(session_factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with session_factory() as session:
        yield session


@pytest.fixture
async def proxied(settings: Settings) -> AsyncIterator[tuple[CuttableProxy, async_sessionmaker[AsyncSession]]]:
    """Sessions whose connections go through a TCP proxy to PostgreSQL that the test can cut."""
    target = urlparse(str(settings.database_url))
    async with cuttable_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        engine = create_engine(settings.model_copy(update={"database_url": proxy.url(str(settings.database_url))}))
        try:
            yield proxy, create_session_factory(engine)
        finally:
            await engine.dispose()


# -- the whole stack, in this event loop -------------------------------------------------------


@pytest.fixture(scope="session")
async def fake_comfy() -> AsyncIterator[FakeHandle]:
    async with running_fake(FakeConfig(step_time=0.01)) as handle:
        yield handle


@pytest.fixture
async def fake(fake_comfy: FakeHandle) -> AsyncIterator[FakeHandle]:
    """The session's fake ComfyUI; whatever a test changes in its config is undone after it."""
    saved = FakeConfig(**fake_comfy.config.as_dict())
    yield fake_comfy
    fake_comfy.config.replace_with(saved)


@pytest.fixture(scope="session")
def stack_settings(settings: Settings, fake_comfy: FakeHandle) -> Settings:
    return settings.model_copy(
        update={
            "comfyui_urls": (fake_comfy.url,),
            "worker_heartbeat_s": 1.0,
            "retry_base_delay_s": 0.05,
            "retry_max_delay_s": 0.2,
            "max_attempts": 3,
            "catalog_ttl_s": 1.0,
            "rate_limit_per_minute": 100_000,
            "max_active_per_user": 50,
        }
    )


@pytest.fixture(scope="session")
async def api_url(stack_settings: Settings) -> AsyncIterator[str]:
    from graph.app import create_app
    from tests.stack import serve

    async with serve(create_app(stack_settings)) as url:
        yield url


@pytest.fixture(scope="session")
async def session_worker(stack_settings: Settings) -> AsyncIterator[Any]:
    """One in-process arq worker for the session (multi-process tests start their own); tests take it
    through `worker`, which hands it over settled."""
    from jobs.worker.app import build_worker

    w = build_worker(stack_settings, handle_signals=False)
    task = asyncio.create_task(w.async_run())
    for _ in range(500):
        if "runtime" in w.ctx:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    yield w
    await w.close()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture
async def worker(session_worker: Any, stack_settings: Settings) -> AsyncIterator[Any]:
    """The session's worker as a test would find it had no test run before: taking jobs, none running or
    queued (whatever an earlier test left has run to its end), the configured backend back with its
    websocket open. Waited for, not assumed; a state that does not settle fails the test that needs it."""
    await _settled(session_worker, tuple(url.rstrip("/") for url in stack_settings.comfyui_urls))
    yield session_worker
    session_worker.release()  # should the test have held it and failed before its own release


async def _settled(w: Any, urls: tuple[str, ...], *, within_s: float = 60.0) -> None:
    runtime = w.ctx["runtime"]
    state: dict[str, object] = {}
    for _ in range(int(within_s / 0.02)):
        backends = list(runtime.backends)
        state = {
            "picking jobs": w.allow_pick_jobs,
            "jobs running": w.job_counter + len(runtime.running),
            "jobs queued": await runtime.redis.zcard(runtime.keys.queue),
            "backends": tuple(b.url for b in backends),
            "sockets open": all(b.socket.connected.is_set() for b in backends),
        }
        if state == {"picking jobs": True, "jobs running": 0, "jobs queued": 0, "backends": urls, "sockets open": True}:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the session's worker did not settle within {within_s} s: {state}")


@pytest.fixture
async def make_client(
    api_url: str, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Callable[..., Awaitable[GraphQLClient]]]:
    """Create a user with a token and a GraphQL client for it."""
    from tests.stack import new_user_client

    clients: list[GraphQLClient] = []

    async def make(*, admin: bool = False) -> GraphQLClient:
        client = await new_user_client(api_url, session_factory, admin=admin)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
