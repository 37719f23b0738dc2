"""Migration 0007: the template tables and generations.template_version_id, up and down."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from db.migrate import downgrade, upgrade
from settings import load_settings


async def _fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _state(url: str) -> tuple[set[str], set[str]]:
    tables = {
        r["tablename"] for r in asyncio.run(_fetch(url, "select tablename from pg_tables where schemaname = 'public'"))
    }
    columns = {
        r["column_name"]
        for r in asyncio.run(
            _fetch(url, "select column_name from information_schema.columns where table_name = 'generations'")
        )
    }
    return tables, columns


def test_0007_up_down_up(database_url: str) -> None:
    base, _, _ = database_url.rpartition("/")
    name = f"safelight_mig7_{uuid.uuid4().hex[:8]}"
    asyncio.run(_execute(database_url, f'CREATE DATABASE "{name}"'))
    url = f"{base}/{name}"
    settings = load_settings(database_url=url)
    try:
        upgrade(settings, "0007")
        tables, columns = _state(url)
        assert {"templates", "template_versions"} <= tables
        assert "template_version_id" in columns
        # A version row references its template; a generation references a version.
        asyncio.run(
            _execute(
                url,
                "insert into templates (name, source, current_version) values ('t', 'uploaded', 1);"
                "insert into template_versions (id, template_name, version, workflow, params, source_format, digest)"
                f" values ('{uuid.uuid4()}', 't', 1, '{{}}', '[]', 'api', '{'0' * 64}')",
            )
        )
        downgrade(settings, "0006")
        tables, columns = _state(url)
        assert not {"templates", "template_versions"} & tables
        assert "template_version_id" not in columns
        upgrade(settings, "0007")
        tables, columns = _state(url)
        assert {"templates", "template_versions"} <= tables
        assert "template_version_id" in columns
    finally:
        asyncio.run(_execute(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
