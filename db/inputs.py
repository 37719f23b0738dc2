"""Input rows: images and masks users uploaded, one per owner and content (migration 0008)."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Input

__all__ = ["add_input", "input_by_hash", "input_by_id", "input_hashes_in", "inputs_by_ids", "inputs_of_owner"]


async def add_input(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    content_hash: str,
    mime: str,
    width: int,
    height: int,
    size_bytes: int,
    filename: str,
) -> tuple[Input, bool]:
    """The owner's input for this content, inserted if new; (row, created).

    Idempotent per owner and content: two concurrent uploads of the same file answer the same row
    (the second INSERT does nothing and the row is read back).
    """
    stmt = (
        pg_insert(Input)
        .values(
            id=uuid.uuid4(),
            owner_id=owner_id,
            content_hash=content_hash,
            mime=mime,
            width=width,
            height=height,
            size_bytes=size_bytes,
            filename=filename,
        )
        .on_conflict_do_nothing(constraint="uq_input_owner_content")
        .returning(Input)
    )
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is not None:
        return row, True
    existing = await input_by_hash(session, owner_id=owner_id, content_hash=content_hash)
    if existing is None:  # deleted between the two statements (its owner was deleted)
        raise LookupError(f"the input of {owner_id} for {content_hash} vanished")
    return existing, False


async def input_by_hash(session: AsyncSession, *, owner_id: uuid.UUID, content_hash: str) -> Input | None:
    stmt = select(Input).where(Input.owner_id == owner_id, Input.content_hash == content_hash)
    return (await session.execute(stmt)).scalar_one_or_none()


async def input_by_id(session: AsyncSession, *, input_id: uuid.UUID, owner_id: uuid.UUID | None) -> Input | None:
    """One input; `owner_id` None reads anyone's (an admin), else only that owner's."""
    stmt = select(Input).where(Input.id == input_id)
    if owner_id is not None:
        stmt = stmt.where(Input.owner_id == owner_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def inputs_of_owner(
    session: AsyncSession, *, owner_id: uuid.UUID | None, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Input]:
    """Those of `ids` that are the owner's inputs (anyone's when `owner_id` is None), in one query."""
    if not ids:
        return {}
    stmt = select(Input).where(Input.id.in_(list(ids)))
    if owner_id is not None:
        stmt = stmt.where(Input.owner_id == owner_id)
    return {row.id: row for row in (await session.execute(stmt)).scalars()}


async def inputs_by_ids(session: AsyncSession, *, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Input]:
    """Inputs by id whoever owns them: the worker's read (the owner was checked when the job was created)."""
    return await inputs_of_owner(session, owner_id=None, ids=ids)


async def input_hashes_in(session: AsyncSession, *, content_hashes: Collection[str]) -> set[str]:
    """Those of `content_hashes` some input still names: their stored files must stay."""
    if not content_hashes:
        return set()
    stmt = select(Input.content_hash).where(Input.content_hash.in_(list(content_hashes))).distinct()
    return set((await session.execute(stmt)).scalars())
