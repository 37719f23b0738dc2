"""Templates in PostgreSQL: versions, the file sync at start, and a save seen by every process at once."""

from __future__ import annotations

import copy
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.proxy import cuttable_proxy
from comfy.templates import SHIPPED_DIR, Template, load_templates, template_digest, template_from_parts
from db import templates as stored
from jobs.keys import Keys
from jobs.templates import TemplateRegistry, sync_template_files


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def _txt2img(name: str, *, steps: int = 20, title: str = "Mine") -> Template:
    shipped = load_templates()["txt2img"]
    workflow = copy.deepcopy(dict(shipped.workflow))
    workflow["3"]["inputs"]["steps"] = steps
    return template_from_parts(
        name=name, title=title, description="", workflow=workflow, params=[p.to_json() for p in shipped.params]
    )


async def _save(session: AsyncSession, template: Template, **kwargs: object) -> stored.SavedVersion:
    saved = await stored.save_template_version(
        session,
        name=template.name,
        source=str(kwargs.pop("source", "uploaded")),
        title=template.title,
        description=template.description,
        workflow=dict(template.workflow),
        params=[p.to_json() for p in template.params],
        source_format="api",
        digest=template_digest(template.workflow, template.params),
        **kwargs,  # type: ignore[arg-type]
    )
    await session.commit()
    return saved


async def test_versions_count_up_and_an_unchanged_save_writes_nothing(session: AsyncSession) -> None:
    name = f"t-{uuid.uuid4().hex[:8]}"
    first = await _save(session, _txt2img(name))
    assert first.created and first.version.version == 1
    again = await _save(session, _txt2img(name))
    assert not again.created and again.version.id == first.version.id
    second = await _save(session, _txt2img(name, steps=30))
    assert second.created and second.version.version == 2
    retitled = await _save(session, _txt2img(name, steps=30, title="Renamed"))
    assert retitled.created and retitled.version.version == 3
    current = await stored.current_template(session, name=name)
    assert current is not None and current.version.id == retitled.version.id and current.source == "uploaded"
    old = await stored.template_version(session, version_id=first.version.id)
    assert old is not None and old.workflow["3"]["inputs"]["steps"] == 20 and old.version == 1
    names = [t.version.template_name for t in await stored.current_templates(session)]
    assert names.count(name) == 1


async def test_an_upload_cannot_take_a_file_templates_name(session: AsyncSession) -> None:
    name = f"t-{uuid.uuid4().hex[:8]}"
    await _save(session, _txt2img(name), source="directory")
    with pytest.raises(stored.TemplateNameTaken) as info:
        await _save(session, _txt2img(name, steps=9), replaces=("uploaded",))
    assert info.value.source == "directory"
    await session.rollback()
    current = await stored.current_template(session, name=name)
    assert current is not None and current.version.version == 1 and current.source == "directory"


async def test_sync_writes_file_templates_once(
    session_factory: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    await sync_template_files(session_factory, ())
    assert await sync_template_files(session_factory, ()) == 0  # unchanged: no new version
    async with session_factory() as session:
        shipped = await stored.current_template(session, name="txt2img")
    assert shipped is not None and shipped.source == "shipped"

    # A directory template of its own name, then changed on disk: one new version at the next start.
    name = f"dir_{uuid.uuid4().hex[:8]}"
    shutil.copy(SHIPPED_DIR / "txt2img.json", tmp_path / f"{name}.json")
    shutil.copy(SHIPPED_DIR / "txt2img.params.json", tmp_path / f"{name}.params.json")
    assert await sync_template_files(session_factory, (tmp_path,)) == 1
    assert await sync_template_files(session_factory, (tmp_path,)) == 0
    workflow = json.loads((tmp_path / f"{name}.json").read_text())
    workflow["3"]["inputs"]["cfg"] = 5.5
    (tmp_path / f"{name}.json").write_text(json.dumps(workflow))
    assert await sync_template_files(session_factory, (tmp_path,)) == 1
    async with session_factory() as session:
        current = await stored.current_template(session, name=name)
    assert current is not None and current.source == "directory" and current.version.version == 2


async def test_a_save_is_seen_by_another_process_at_once(
    session_factory: async_sessionmaker[AsyncSession], redis: Redis, namespace: str
) -> None:
    keys = Keys(f"{namespace}-reg-{uuid.uuid4().hex[:6]}")
    api_a = TemplateRegistry(sessions=session_factory, redis=redis, keys=keys)
    api_b = TemplateRegistry(sessions=session_factory, redis=redis, keys=keys)
    name = f"t-{uuid.uuid4().hex[:8]}"
    assert await api_b.get(name) is None  # B's cache is loaded now, without the template

    first, created = await api_a.save(template=_txt2img(name), source_format="api", created_by=None)
    assert created and first.version == 1 and first.source == "uploaded"
    seen = await api_b.get(name)
    assert seen is not None and seen.version_id == first.version_id

    second, _ = await api_a.save(template=_txt2img(name, steps=31), source_format="ui", created_by=None)
    seen = await api_b.get(name)
    assert seen is not None and seen.version == 2 and seen.source_format == "ui"
    assert seen.template.workflow["3"]["inputs"]["steps"] == 31
    # A generation created with version 1 still builds from version 1.
    old = await api_b.version(first.version_id)
    assert old is not None and old.version == 1 and old.template.workflow["3"]["inputs"]["steps"] == 20
    assert await api_b.version(uuid.uuid4()) is None

    unchanged, created = await api_a.save(template=_txt2img(name, steps=31), source_format="ui", created_by=None)
    assert not created and unchanged.version_id == second.version_id


async def test_with_redis_unreachable_every_read_asks_the_database(
    session_factory: async_sessionmaker[AsyncSession], redis_url: str, namespace: str
) -> None:
    keys = Keys(f"{namespace}-down-{uuid.uuid4().hex[:6]}")
    target = urlparse(redis_url)
    async with cuttable_proxy(target.hostname or "127.0.0.1", target.port or 6379) as proxy:
        writer_redis = Redis.from_url(redis_url)
        # This process's Redis goes down and comes back; the other process's stays up.
        api_redis = Redis.from_url(proxy.url(redis_url), socket_connect_timeout=1, socket_timeout=1)
        try:
            other = TemplateRegistry(sessions=session_factory, redis=writer_redis, keys=keys)
            api = TemplateRegistry(sessions=session_factory, redis=api_redis, keys=keys)
            name = f"t-{uuid.uuid4().hex[:8]}"
            await other.save(template=_txt2img(name), source_format="api", created_by=None)
            assert (await other.get(name)) is not None  # `other` has its cache loaded

            await proxy.cut()
            found = await api.get(name)  # no counter to compare: the database is read, never a stale cache
            assert found is not None and found.version == 1
            saved, created = await api.save(template=_txt2img(name, steps=7), source_format="api", created_by=None)
            assert created and saved.version == 2  # saved though it cannot be announced yet
            stale = await other.get(name)
            assert stale is not None and stale.version == 1

            await proxy.restore()
            assert (await api.get(name)) is not None  # the next read with Redis back announces the change...
            seen = await other.get(name)
            assert seen is not None and seen.version == 2  # ...which the other process reads at once
        finally:
            await writer_redis.aclose()
            await api_redis.aclose()
