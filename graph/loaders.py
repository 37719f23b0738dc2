"""DataLoaders, created per request: one query per field per page, never one per row."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.dataloader import DataLoader

from db import models
from db.images import images_for_generations
from db.users import users_by_ids

__all__ = ["Loaders"]


@dataclass
class Loaders:
    images: DataLoader[uuid.UUID, list[models.Image]]
    users: DataLoader[uuid.UUID, models.User | None]

    @classmethod
    def create(cls, sessions: async_sessionmaker[AsyncSession]) -> Loaders:
        async def load_images(ids: Sequence[uuid.UUID]) -> list[list[models.Image]]:
            async with sessions() as session:
                found = await images_for_generations(session, generation_ids=ids)
            return [found.get(i, []) for i in ids]

        async def load_users(ids: Sequence[uuid.UUID]) -> list[models.User | None]:
            async with sessions() as session:
                found = await users_by_ids(session, user_ids=ids)
            return [found.get(i) for i in ids]

        return cls(images=DataLoader(load_fn=load_images), users=DataLoader(load_fn=load_users))
