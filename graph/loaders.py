"""DataLoaders, created per request: one query per field per page, never one per row."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.dataloader import DataLoader

from db import models
from db.generation_reads import queue_positions
from db.images import images_for_generations
from db.users import users_by_ids

__all__ = ["Loaders", "Retry", "then"]

T = TypeVar("T")
R = TypeVar("R")


class Retry(Protocol):
    """How a read is tried again while the database is unreachable (graph.subscriptions.patiently)."""

    def __call__(self, read: Callable[[], Awaitable[T]], /) -> Awaitable[T]: ...


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
    and there is one context per websocket connection (see bench/subscriptions.py).

    A subscription's loaders ride out a database outage (`retry_reads`): a SNAPSHOT's fields are
    read late, and an error there would end the subscription. An HTTP query's fail at once.
    """

    __slots__ = ("_images", "_positions", "_retry", "_sessions", "_users")

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._retry: Retry | None = None
        self._images: DataLoader[uuid.UUID, list[models.Image]] | None = None
        self._users: DataLoader[uuid.UUID, models.User | None] | None = None
        self._positions: DataLoader[uuid.UUID, int | None] | None = None

    @classmethod
    def create(cls, sessions: async_sessionmaker[AsyncSession]) -> Loaders:
        return cls(sessions)

    def retry_reads(self, retry: Retry) -> None:
        """From now on, every batch is read through `retry` (loaders made before included)."""
        self._retry = retry

    async def _read(self, read: Callable[[], Awaitable[T]]) -> T:
        return await (read() if self._retry is None else self._retry(read))

    @property
    def images(self) -> DataLoader[uuid.UUID, list[models.Image]]:
        if self._images is None:
            sessions = self._sessions

            async def read_images(ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[models.Image]]:
                async with sessions() as session:
                    return await images_for_generations(session, generation_ids=ids)

            async def load_images(ids: Sequence[uuid.UUID]) -> list[list[models.Image]]:
                found = await self._read(lambda: read_images(ids))
                return [found.get(i, []) for i in ids]

            self._images = DataLoader(load_fn=load_images)
        return self._images

    @property
    def users(self) -> DataLoader[uuid.UUID, models.User | None]:
        if self._users is None:
            sessions = self._sessions

            async def read_users(ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, models.User]:
                async with sessions() as session:
                    return await users_by_ids(session, user_ids=ids)

            async def load_users(ids: Sequence[uuid.UUID]) -> list[models.User | None]:
                found = await self._read(lambda: read_users(ids))
                return [found.get(i) for i in ids]

            self._users = DataLoader(load_fn=load_users)
        return self._users

    @property
    def queue_positions(self) -> DataLoader[uuid.UUID, int | None]:
        if self._positions is None:
            sessions = self._sessions

            async def read_positions(ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
                async with sessions() as session:
                    return await queue_positions(session, generation_ids=ids)

            async def load_positions(ids: Sequence[uuid.UUID]) -> list[int | None]:
                found = await self._read(lambda: read_positions(ids))
                return [found.get(i) for i in ids]

            self._positions = DataLoader(load_fn=load_positions)
        return self._positions
