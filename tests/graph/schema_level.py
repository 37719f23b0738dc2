"""Schema-level execution against a real AppState (PostgreSQL, Redis, the fake ComfyUI): no HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from db import models
from db.users import ensure_user
from graph.context import Context
from graph.loaders import Loaders
from graph.schema import build_schema
from graph.state import AppState, app_state
from settings import Settings

__all__ = ["SchemaClient", "schema_state"]


@asynccontextmanager
async def schema_state(settings: Settings, **changes: Any) -> AsyncIterator[AppState]:
    """The API's state for `settings` with `changes`, in a namespace of its own.

    Its own namespace keeps the session's worker off the jobs it queues (recovery, too, takes only
    its own namespace's generations).
    """
    update = {"namespace": f"sltest-{uuid.uuid4().hex[:8]}", "public_url": "http://test", **changes}
    async with app_state(settings.model_copy(update=update)) as state:
        yield state


class SchemaClient:
    """One user's view of the schema, executed in this event loop."""

    def __init__(self, state: AppState, user: models.User) -> None:
        self.state = state
        self.user = user
        self.schema = build_schema()

    @classmethod
    async def create(cls, state: AppState, *, admin: bool = False) -> SchemaClient:
        async with state.sessions() as session:
            user = await ensure_user(session, name=f"user-{uuid.uuid4().hex[:8]}", is_admin=admin)
            await session.commit()
        return cls(state, user)

    async def query(self, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        context = Context(
            state=self.state,
            request=None,  # type: ignore[arg-type]
            response=None,
            loaders=Loaders.create(self.state.sessions),
        )
        context.viewer_row = self.user
        result = await self.schema.execute(document, variable_values=variables, context_value=context)
        assert result.errors is None, result.errors
        assert result.data is not None
        return result.data
