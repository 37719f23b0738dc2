"""DataLoaders, created per request: one query per field per page, never one per row."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.dataloader import DataLoader

from db import models
from db.generations import queue_positions
from db.images import images_for_generations
from db.users import users_by_ids

__all__ = ["Loaders", "then"]

T = TypeVar("T")
R = TypeVar("R")


def then(pending: Awaitable[T], convert: Callable[[T], R]) -> asyncio.Future[R]:
    """A future of `convert(result)`, for resolvers that hand graphql-core a future, not a coroutine.

    A field resolver written `async def` creates a coroutine per field; when a
    subscriber disconnects while its result is being executed, graphql-core
    drops those coroutines un-awaited (a RuntimeWarning each). A future can be
    dropped silently, so the DataLoader-backed fields return one.
    """
    future = asyncio.ensure_future(pending)  # DataLoader.load already returns a future: no wrapping
    out: asyncio.Future[R] = asyncio.get_running_loop().create_future()

    def done(source: asyncio.Future[T]) -> None:
        if out.done():
            return
        if source.cancelled():
            out.cancel()
        elif (error := source.exception()) is not None:
            out.set_exception(error)
        else:
            out.set_result(convert(source.result()))

    future.add_done_callback(done)
    return out


class Loaders:
    """A request's DataLoaders, each made on first use: a subscription's context usually needs none,
    and there is one context per websocket connection (see bench/subscriptions.py)."""

    __slots__ = ("_images", "_positions", "_sessions", "_users")

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._images: DataLoader[uuid.UUID, list[models.Image]] | None = None
        self._users: DataLoader[uuid.UUID, models.User | None] | None = None
        self._positions: DataLoader[uuid.UUID, int | None] | None = None

    @classmethod
    def create(cls, sessions: async_sessionmaker[AsyncSession]) -> Loaders:
        return cls(sessions)

    @property
    def images(self) -> DataLoader[uuid.UUID, list[models.Image]]:
        if self._images is None:
            sessions = self._sessions

            async def load_images(ids: Sequence[uuid.UUID]) -> list[list[models.Image]]:
                async with sessions() as session:
                    found = await images_for_generations(session, generation_ids=ids)
                return [found.get(i, []) for i in ids]

            self._images = DataLoader(load_fn=load_images)
        return self._images

    @property
    def users(self) -> DataLoader[uuid.UUID, models.User | None]:
        if self._users is None:
            sessions = self._sessions

            async def load_users(ids: Sequence[uuid.UUID]) -> list[models.User | None]:
                async with sessions() as session:
                    found = await users_by_ids(session, user_ids=ids)
                return [found.get(i) for i in ids]

            self._users = DataLoader(load_fn=load_users)
        return self._users

    @property
    def queue_positions(self) -> DataLoader[uuid.UUID, int | None]:
        if self._positions is None:
            sessions = self._sessions

            async def load_positions(ids: Sequence[uuid.UUID]) -> list[int | None]:
                async with sessions() as session:
                    found = await queue_positions(session, generation_ids=ids)
                return [found.get(i) for i in ids]

            self._positions = DataLoader(load_fn=load_positions)
        return self._positions
