"""GraphQL view of uploaded inputs: the `Input` type and `Query.input(id)`.

Inputs are uploaded over HTTP (`POST /inputs`, graph/uploads.py); their id is what an IMAGE or MASK
parameter takes.
"""

from __future__ import annotations

import uuid

import strawberry

from db import models
from db.inputs import input_by_id
from graph.context import Context
from graph.uploads import input_urls

__all__ = ["Input", "InputQueries"]


@strawberry.type(description="An image or mask uploaded with POST /inputs; its id is an IMAGE/MASK parameter's value.")
class Input:
    id: strawberry.ID
    url: str = strawberry.field(description="Absolute URL of the uploaded file (owner or admin, with the token).")
    thumbnail_url: str = strawberry.field(description="Absolute URL of a PNG of at most 256 x 256 pixels.")
    width: int
    height: int
    mime: str
    size_bytes: int
    filename: str = strawberry.field(description="The name the file was uploaded with (display only).")

    @classmethod
    def from_row(cls, row: models.Input, *, base_url: str) -> Input:
        url, thumbnail_url = input_urls(base_url, row.id)
        return cls(
            id=strawberry.ID(str(row.id)),
            url=url,
            thumbnail_url=thumbnail_url,
            width=row.width,
            height=row.height,
            mime=row.mime,
            size_bytes=row.size_bytes,
            filename=row.filename,
        )


@strawberry.type
class InputQueries:
    @strawberry.field(description="One of the viewer's inputs (any user's, for an admin); null if there is none.")
    async def input(self, info: strawberry.Info[Context, None], id: strawberry.ID) -> Input | None:
        viewer = info.context.viewer
        try:
            input_id = uuid.UUID(str(id))
        except ValueError:
            return None
        async with info.context.state.sessions() as session:
            row = await input_by_id(session, input_id=input_id, owner_id=None if viewer.is_admin else viewer.id)
        return None if row is None else Input.from_row(row, base_url=info.context.base_url)
