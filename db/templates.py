"""Templates and their versions: the reads the API and workers serve from, the one guarded write.

A version is never updated once written: a generation names the version it ran
(`generations.template_version_id`), so what it shows and what the worker submits stay what they were
when it was created. `templates.current_version` says which version new generations use.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import TemplateRecord, TemplateVersion

__all__ = [
    "SOURCES",
    "CurrentTemplate",
    "SavedVersion",
    "TemplateNameTaken",
    "current_template",
    "current_templates",
    "save_template_version",
    "template_version",
]

SOURCES: Final = ("shipped", "directory", "uploaded")


class TemplateNameTaken(Exception):
    """The name belongs to a template from another source (an uploaded one cannot replace a shipped one)."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        super().__init__(f"template {name!r} is a {source} template; choose another name")


@dataclass(frozen=True, slots=True)
class CurrentTemplate:
    """A template's current version with what the `templates` row says of it."""

    version: TemplateVersion
    source: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SavedVersion:
    version: TemplateVersion
    created: bool  # False: the current version already had this content


def _current_versions() -> Select[TemplateVersion, str, datetime]:
    """Each template's current version joined to what its `templates` row says of it."""
    return select(TemplateVersion, TemplateRecord.source, TemplateRecord.updated_at).join(
        TemplateRecord,
        (TemplateRecord.name == TemplateVersion.template_name)
        & (TemplateRecord.current_version == TemplateVersion.version),
    )


async def current_templates(session: AsyncSession) -> list[CurrentTemplate]:
    """Every template's current version, by name."""
    stmt = _current_versions().order_by(TemplateRecord.name)
    return [CurrentTemplate(v, source, at) for v, source, at in (await session.execute(stmt)).all()]


async def current_template(session: AsyncSession, *, name: str) -> CurrentTemplate | None:
    stmt = _current_versions().where(TemplateRecord.name == name)
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else CurrentTemplate(row[0], row[1], row[2])


async def template_version(session: AsyncSession, *, version_id: uuid.UUID) -> TemplateVersion | None:
    return await session.get(TemplateVersion, version_id)


async def save_template_version(
    session: AsyncSession,
    *,
    name: str,
    source: str,
    title: str,
    description: str,
    workflow: dict[str, Any],
    params: list[Any],
    source_format: str,
    digest: str,
    created_by: uuid.UUID | None = None,
    replaces: Collection[str] = SOURCES,
) -> SavedVersion:
    """Make this content the template's current version; the caller commits.

    Idempotent: when the current version has the same digest, title and description, nothing is
    written and it comes back (`created=False`). An existing template whose source is not in
    `replaces` is left alone (TemplateNameTaken). The template's row is locked until the commit, so
    concurrent saves (API and workers syncing at the same start) number their versions one by one.
    """
    if source not in SOURCES:
        raise ValueError(f"source {source!r} is not one of {SOURCES}")
    await session.execute(
        pg_insert(TemplateRecord)
        .values(name=name, source=source, current_version=0)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    record = (
        await session.execute(
            select(TemplateRecord)
            .where(TemplateRecord.name == name)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    if record.current_version > 0 and record.source not in replaces:
        raise TemplateNameTaken(name, record.source)
    if record.current_version > 0:
        current = (
            await session.execute(
                select(TemplateVersion).where(
                    TemplateVersion.template_name == name, TemplateVersion.version == record.current_version
                )
            )
        ).scalar_one()
        if (current.digest, current.title, current.description) == (digest, title, description):
            if record.source != source:
                record.source = source
                await session.flush()
            return SavedVersion(current, created=False)
    latest = await session.scalar(
        select(func.coalesce(func.max(TemplateVersion.version), 0)).where(TemplateVersion.template_name == name)
    )
    version = TemplateVersion(
        id=uuid.uuid4(),
        template_name=name,
        version=int(latest or 0) + 1,
        title=title,
        description=description,
        workflow=workflow,
        params=params,
        source_format=source_format,
        digest=digest,
        created_by=created_by,
    )
    session.add(version)
    await session.flush()
    await session.execute(
        update(TemplateRecord)
        .where(TemplateRecord.name == name)
        .values(current_version=version.version, source=source, updated_at=func.now())
    )
    await session.refresh(version)
    return SavedVersion(version, created=True)
