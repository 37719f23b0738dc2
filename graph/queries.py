"""Query resolvers: generations, templates, the model catalogue, the viewer."""

from __future__ import annotations

import uuid

import strawberry

from db import cursors, generation_reads
from graph.context import BadRequest, Context
from graph.status import SystemStatusType, resolve_system_status
from graph.templates import Template
from graph.types import Generation, Status, User

__all__ = ["Query", "parse_id"]

MAX_PAGE = 100


def parse_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class GenerationEdge:
    cursor: str
    node: Generation


@strawberry.type
class GenerationConnection:
    edges: list[GenerationEdge]
    page_info: PageInfo


@strawberry.type
class Catalog:
    available: bool = strawberry.field(description="False when no backend answered; the lists are then empty.")
    checkpoints: list[str]
    loras: list[str]
    samplers: list[str]
    schedulers: list[str]


def _scope(info: strawberry.Info[Context, None]) -> uuid.UUID | None:
    viewer = info.context.viewer
    return None if viewer.is_admin else viewer.id


@strawberry.type
class Query:
    system_status: SystemStatusType = strawberry.field(
        resolver=resolve_system_status, description="Queue, workers, backends and recent outcomes (admins only)."
    )

    @strawberry.field(description="The authenticated user, or null without a token.")
    def viewer(self, info: strawberry.Info[Context, None]) -> User | None:
        row = info.context.viewer_row
        return None if row is None else User.from_row(row)

    @strawberry.field(description="One of the viewer's generations (admins: anyone's); null if not found.")
    async def generation(self, info: strawberry.Info[Context, None], id: strawberry.ID) -> Generation | None:
        owner = _scope(info)
        gid = parse_id(id)
        if gid is None:
            return None
        async with info.context.state.sessions() as session:
            row = await generation_reads.get_generation(session, generation_id=gid, owner_id=owner)
        return None if row is None else Generation.from_row(row)

    @strawberry.field(description="The viewer's generations, newest first, with cursor pagination.")
    async def generations(
        self,
        info: strawberry.Info[Context, None],
        first: int = 20,
        after: str | None = None,
        status: list[Status] | None = None,
        search: str | None = None,
    ) -> GenerationConnection:
        owner = _scope(info)
        first = max(1, min(first, MAX_PAGE))
        async with info.context.state.sessions() as session:
            try:
                page = await generation_reads.list_generations(
                    session,
                    owner_id=owner,
                    first=first,
                    after=after,
                    statuses=list(status or ()),
                    search=(search or "").strip()[:200] or None,
                )
            except ValueError as exc:
                raise BadRequest("invalid cursor") from exc
        edges = [GenerationEdge(cursor=cursors.encode_cursor(r), node=Generation.from_row(r)) for r in page.rows]
        return GenerationConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next,
                has_previous_page=page.has_previous,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )

    @strawberry.field(description="Workflow templates (their current versions) and their typed parameters.")
    async def templates(self, info: strawberry.Info[Context, None]) -> list[Template]:
        current = await info.context.state.templates.current()
        return [Template.from_runtime(t) for t in current.values()]

    @strawberry.field(description="Models, samplers and schedulers offered by the backends (cached briefly).")
    async def catalog(self, info: strawberry.Info[Context, None]) -> Catalog:
        merged = await info.context.state.catalogs.get()
        if merged is None:
            return Catalog(available=False, checkpoints=[], loras=[], samplers=[], schedulers=[])
        return Catalog(
            available=True,
            checkpoints=list(merged.checkpoints),
            loras=list(merged.loras),
            samplers=list(merged.samplers),
            schedulers=list(merged.schedulers),
        )
