"""Fixtures shared by the graph tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlparse

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.proxy import CuttableProxy, cuttable_proxy
from db.engine import create_engine, create_session_factory
from settings import Settings


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
