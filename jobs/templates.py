"""Templates at run time: synced from files at start, served from PostgreSQL, saved without a restart.

At API and worker start the shipped and directory templates (SAFELIGHT_TEMPLATE_DIRS) are written to
the database, a new version only where one changed. The API serves the current versions from a cache
that every process drops at once when a template is saved: a save increments a Redis counter, and
each read compares it with the one its cache was loaded at (one GET). With Redis unreachable the
cache is reloaded from the database on each read instead, which is slower but never stale.

A generation names the template version it was created with; the worker builds from exactly that
version (`TemplateRegistry.version`, cached forever since versions never change).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comfy.templates import Template, load_templates, template_digest, template_from_parts
from db import templates as stored
from db.models import TemplateVersion
from jobs.keys import Keys

__all__ = ["RuntimeTemplate", "TemplateRegistry", "sync_template_files"]

log = logging.getLogger(__name__)

_MAX_CACHED_VERSIONS: Final = 256


@dataclass(frozen=True, slots=True)
class RuntimeTemplate:
    """A template version as the API and worker use it."""

    template: Template
    version_id: uuid.UUID
    version: int
    source: str  # shipped | directory | uploaded
    source_format: str  # api | ui
    updated_at: datetime | None  # when the template last changed (None: read by version id)

    @property
    def name(self) -> str:
        return self.template.name

    @classmethod
    def from_row(cls, row: TemplateVersion, *, source: str, updated_at: datetime | None) -> RuntimeTemplate:
        template = template_from_parts(
            name=row.template_name,
            title=row.title,
            description=row.description,
            workflow=row.workflow,
            params=row.params,
        )
        return cls(template, row.id, row.version, source, row.source_format, updated_at)


async def sync_template_files(sessions: async_sessionmaker[AsyncSession], template_dirs: Sequence[Path]) -> int:
    """Write the shipped and directory templates to the database; the number of new versions.

    A name a directory template shares with a shipped one is the directory's (as `load_templates`
    reads them); one that an uploaded template has is taken over by the directory, which is the
    operator's configuration (its versions go on counting from the uploaded ones).
    """
    shipped = load_templates(())
    files = load_templates(template_dirs)
    created = 0
    for name, template in files.items():
        digest = template_digest(template.workflow, template.params)
        original = shipped.get(name)
        is_shipped = original is not None and template_digest(original.workflow, original.params) == digest
        async with sessions() as session:
            saved = await stored.save_template_version(
                session,
                name=name,
                source="shipped" if is_shipped else "directory",
                title=template.title,
                description=template.description,
                workflow=dict(template.workflow),
                params=[p.to_json() for p in template.params],
                source_format="api",
                digest=digest,
            )
            await session.commit()
        if saved.created:
            created += 1
            log.info("template %r is now version %d (from its files)", name, saved.version.version)
    return created


class TemplateRegistry:
    """The current templates of the database for one process, and template versions by id."""

    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], redis: Redis, keys: Keys) -> None:
        self._sessions = sessions
        self._redis = redis
        self._epoch_key = keys.templates_epoch
        self._current: dict[str, RuntimeTemplate] = {}
        self._loaded_at: bytes | None = None  # the counter's value the cache was loaded at
        self._loaded = False
        self._unannounced = False  # a change this process made while Redis was unreachable
        self._versions: dict[uuid.UUID, RuntimeTemplate] = {}

    async def current(self) -> Mapping[str, RuntimeTemplate]:
        """The current version of every template, as saved by any process up to now."""
        try:
            if self._unannounced:  # Redis is back, maybe: tell the others of the change they missed
                await self._redis.incr(self._epoch_key)
                self._unannounced = False
            epoch = await self._redis.get(self._epoch_key)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            log.warning("template changes unknown (%s); reading the database", exc)
            await self._load(None)
            self._loaded = False
            return self._current
        if not self._loaded or epoch != self._loaded_at:
            await self._load(epoch)
        return self._current

    async def get(self, name: str) -> RuntimeTemplate | None:
        return (await self.current()).get(name)

    async def version(self, version_id: uuid.UUID) -> RuntimeTemplate | None:
        """Exactly that version (never the current one): what a generation was created with."""
        found = self._versions.get(version_id)
        if found is not None:
            return found
        async with self._sessions() as session:
            row = await stored.template_version(session, version_id=version_id)
            record = None if row is None else await stored.current_template(session, name=row.template_name)
        if row is None:
            return None
        found = RuntimeTemplate.from_row(row, source=record.source if record else "uploaded", updated_at=None)
        if len(self._versions) >= _MAX_CACHED_VERSIONS:
            self._versions.clear()
        self._versions[version_id] = found
        return found

    async def save(
        self,
        *,
        template: Template,
        source_format: str,
        created_by: uuid.UUID | None,
    ) -> tuple[RuntimeTemplate, bool]:
        """Save an admin's template as its new current version; `(template, created)`.

        Raises db.templates.TemplateNameTaken when a shipped or directory template has the name.
        """
        async with self._sessions() as session:
            saved = await stored.save_template_version(
                session,
                name=template.name,
                source="uploaded",
                title=template.title,
                description=template.description,
                workflow=dict(template.workflow),
                params=[p.to_json() for p in template.params],
                source_format=source_format,
                digest=template_digest(template.workflow, template.params),
                created_by=created_by,
                replaces=("uploaded",),
            )
            await session.commit()
            current = await stored.current_template(session, name=template.name)
        if saved.created:
            await self.announce()
        updated_at = current.updated_at if current is not None else None
        return RuntimeTemplate.from_row(saved.version, source="uploaded", updated_at=updated_at), saved.created

    async def announce(self) -> None:
        """Tell every process's registry that templates changed (after the change committed)."""
        try:
            await self._redis.incr(self._epoch_key)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            log.warning("could not announce a template change (%s); announced on this process's next read", exc)
            self._unannounced = True
        self._loaded = False

    async def _load(self, epoch: bytes | None) -> None:
        async with self._sessions() as session:
            rows = await stored.current_templates(session)
        current: dict[str, RuntimeTemplate] = {}
        for row in rows:
            try:
                current[row.version.template_name] = RuntimeTemplate.from_row(
                    row.version, source=row.source, updated_at=row.updated_at
                )
            except ValueError as exc:  # written by an older release with other rules: skipped, not fatal
                version = row.version
                log.warning("template %r version %d is unusable: %s", version.template_name, version.version, exc)
        self._current, self._loaded_at, self._loaded = current, epoch, True
