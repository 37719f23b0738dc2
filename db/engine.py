"""Engine and session factory, built by the process that owns them (lifespan / on_startup).

Dropped connections (a PostgreSQL restart, `pg_terminate_backend`, a proxy's idle timeout) cost
nothing on the hot path: no pre-ping round trips. Instead:
- a checkout hands out only connections whose socket is still open (`_closed_on_checkout`, a local
  check that catches every connection the server closed while it sat in the pool);
- a connection lost in the middle of a statement fails that statement only: SQLAlchemy's asyncpg
  dialect recognises the disconnect and invalidates the whole pool, so the next checkout connects anew;
- `pool_recycle` retires connections before a server or proxy idle timeout can silently drop them.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from settings import Settings

__all__ = ["create_engine", "create_session_factory", "single_statement"]

_RECYCLE_S = 1800


def create_engine(settings: Settings, *, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(
        settings.async_database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=_RECYCLE_S,
        # asyncpg's statement cache is per connection; keep it, it is the fast path.
        connect_args={"server_settings": {"application_name": "safelight"}},
    )
    event.listen(engine.sync_engine.pool, "checkout", _closed_on_checkout)
    return engine


def _closed_on_checkout(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    """Refuse a pooled connection the server has closed; the pool then connects a fresh one."""
    if dbapi_connection.driver_connection.is_closed():
        raise exc.DisconnectionError("connection closed by the server while pooled")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def single_statement(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for work that is one statement (or statements that need no common transaction).

    Every statement runs in autocommit, atomic on its own: no BEGIN and COMMIT round trips around
    it. `commit()` and `rollback()` on it are harmless and do nothing to what was executed.
    """
    async with _autocommit_factory(sessions)() as session:
        yield session


_AUTOCOMMIT: weakref.WeakKeyDictionary[async_sessionmaker[AsyncSession], async_sessionmaker[AsyncSession]] = (
    weakref.WeakKeyDictionary()
)


def _autocommit_factory(sessions: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """The same factory on an autocommit view of its engine (same pool; every connection it checks
    out is autocommit, and returns to the pool with the engine's isolation level again)."""
    factory = _AUTOCOMMIT.get(sessions)
    if factory is None:
        options = dict(sessions.kw)
        engine: AsyncEngine = options.pop("bind")
        factory = async_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), **options)
        _AUTOCOMMIT[sessions] = factory
    return factory
