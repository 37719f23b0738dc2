"""Image rows: one per output of a generation (an image, animation, video, sound or text; `kind` says which)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Generation, Image

__all__ = ["add_image", "content_hashes_in_use", "image_at", "image_with_template_at", "images_for_generations"]


async def add_image(
    session: AsyncSession,
    *,
    generation_id: uuid.UUID,
    index: int,
    content_hash: str,
    mime: str,
    width: int | None,
    height: int | None,
    seed: int,
    size_bytes: int,
    node_id: str,
    kind: str = "image",
    batch_index: int = 0,
    frames: int | None = None,
    duration_s: float | None = None,
    filename: str = "",
) -> Image | None:
    """Insert an output row; None when this index was already recorded (a job that ran twice)."""
    stmt = (
        pg_insert(Image)
        .values(
            id=uuid.uuid4(),
            generation_id=generation_id,
            index=index,
            content_hash=content_hash,
            mime=mime,
            width=width,
            height=height,
            seed=seed,
            size_bytes=size_bytes,
            node_id=node_id,
            kind=kind,
            batch_index=batch_index,
            frames=frames,
            duration_s=duration_s,
            filename=filename,
        )
        .on_conflict_do_nothing(constraint="uq_image_index")
        .returning(Image)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def images_for_generations(
    session: AsyncSession, *, generation_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Image]]:
    """All images of many generations in one query (the DataLoader's batch)."""
    out: dict[uuid.UUID, list[Image]] = {gid: [] for gid in generation_ids}
    if not generation_ids:
        return out
    stmt = select(Image).where(Image.generation_id.in_(list(generation_ids))).order_by(Image.generation_id, Image.index)
    for image in (await session.execute(stmt)).scalars():
        out[image.generation_id].append(image)
    return out


async def image_at(session: AsyncSession, *, generation_id: uuid.UUID, index: int) -> Image | None:
    """One output image of a generation, by its index (what an image URL names); None once deleted."""
    stmt = select(Image).where(Image.generation_id == generation_id, Image.index == index)
    return (await session.execute(stmt)).scalar_one_or_none()


async def content_hashes_in_use(session: AsyncSession, *, content_hashes: Sequence[str]) -> set[str]:
    """Those of `content_hashes` that an image row still names (a stored file shared by generations)."""
    if not content_hashes:
        return set()
    stmt = select(Image.content_hash).where(Image.content_hash.in_(list(content_hashes)))
    return set((await session.execute(stmt)).scalars())


async def image_with_template_at(
    session: AsyncSession, *, generation_id: uuid.UUID, index: int
) -> tuple[Image, str] | None:
    """An output and the template name of its generation (a download's file name says both); None once deleted."""
    stmt = (
        select(Image, Generation.template)
        .join(Generation, Generation.id == Image.generation_id)
        .where(Image.generation_id == generation_id, Image.index == index)
    )
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else (row[0], row[1])
