from __future__ import annotations

import asyncio
import uuid

import asyncpg

from db.migrate import downgrade, upgrade
from settings import load_settings


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("select tablename from pg_tables where schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    """On a database of its own, so the session's database stays migrated."""
    base, _, _ = database_url.rpartition("/")
    name = f"safelight_mig_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(database_url, f'CREATE DATABASE "{name}"'))
    url = f"{base}/{name}"
    settings = load_settings(database_url=url)
    try:
        upgrade(settings)
        expected = {"users", "api_tokens", "generations", "generation_events", "images", "alembic_version"}
        assert expected <= asyncio.run(_tables(url))
        downgrade(settings, "base")
        assert asyncio.run(_tables(url)) == {"alembic_version"}
        upgrade(settings)
        assert expected <= asyncio.run(_tables(url))
    finally:
        asyncio.run(_admin(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
