"""Session-wide services: a fresh, migrated PostgreSQL database and a Redis namespace.

PostgreSQL and Redis come from DATABASE_URL / REDIS_URL when set (CI and this
machine have both running); otherwise the embedded servers are started under a
temporary directory. Each session creates its own database, migrates it, and
drops it at the end; Redis keys live under a namespace unique to the session.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.engine import create_engine, create_session_factory
from db.migrate import upgrade
from settings import Settings, load_settings


@pytest.fixture(scope="session")
def _services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(server-level PostgreSQL URL, Redis URL)."""
    pg_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    with ExitStack() as stack:
        if pg_url is None or redis_url is None:
            from safelight.embedded import EmbeddedPostgres, EmbeddedRedis

            root = tmp_path_factory.mktemp("embedded")
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
def settings(
    database_url: str, redis_url: str, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
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
