"""db.images: one row per (generation, index), read for many generations at once."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from db.images import content_hashes_in_use, images_for_generations
from tests.db.rows import new_generation, new_image, new_user


async def test_images_are_unique_per_index_and_read_in_batches(session: AsyncSession) -> None:
    owner = await new_user(session)
    change, _ = await new_generation(session, owner)
    gid = change.generation.id
    for index in range(2):
        assert await new_image(session, gid, index) is not None
    assert await new_image(session, gid, 0, content_hash="f" * 64) is None  # index 0 again, other bytes
    by_generation = await images_for_generations(session, generation_ids=[gid, uuid.uuid4()])
    assert [i.index for i in by_generation[gid]] == [0, 1]


async def test_content_hashes_in_use_are_those_an_image_row_names(session: AsyncSession) -> None:
    owner = await new_user(session)
    change, _ = await new_generation(session, owner)
    await new_image(session, change.generation.id, 0, content_hash="a" * 64)
    assert await content_hashes_in_use(session, content_hashes=["a" * 64, "b" * 64]) == {"a" * 64}
    assert await content_hashes_in_use(session, content_hashes=[]) == set()
