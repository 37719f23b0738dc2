"""Rows the database tests start from: a user, a generation, an image's columns and its row."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from db.images import add_image
from db.models import Image, User
from db.transitions import Change, create_generation
from db.users import ensure_user


async def new_user(session: AsyncSession) -> User:
    user = await ensure_user(session, name=f"u-{uuid.uuid4().hex[:8]}")
    await session.commit()
    return user


async def new_generation(
    session: AsyncSession, owner: User, *, prompt: str = "a cat", key: str | None = None
) -> tuple[Change, bool]:
    change, created = await create_generation(
        session,
        owner_id=owner.id,
        template="txt2img",
        params={"prompt": prompt},
        prompt=prompt,
        seed=7,
        idempotency_key=key,
    )
    await session.commit()
    return change, created


def image_columns(index: int) -> dict[str, object]:
    """The columns `record_image` takes for image `index` (a distinct content hash each)."""
    return {
        "index": index,
        "content_hash": f"{index:064x}",
        "mime": "image/png",
        "width": 64,
        "height": 64,
        "seed": 7,
        "size_bytes": 100,
        "node_id": "",
    }


async def new_image(
    session: AsyncSession, generation_id: uuid.UUID, index: int, *, content_hash: str | None = None
) -> Image | None:
    """Image `index` of the generation with `image_columns`' values (another content hash when given)."""
    columns = image_columns(index)
    if content_hash is not None:
        columns["content_hash"] = content_hash
    return await add_image(session, generation_id=generation_id, **columns)
