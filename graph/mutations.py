"""Mutation resolvers: create, cancel, retry and delete generations. Failures are union results."""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from strawberry.scalars import JSON

from db import models
from graph.context import Context
from graph.queries import parse_id
from graph.results import (
    BackendList,
    CancelGenerationResult,
    CreateGenerationResult,
    DeletedGeneration,
    DeleteGenerationResult,
    FieldError,
    GenerationPayload,
    JobResultError,
    NotAllowedError,
    NotFoundError,
    RetryGenerationResult,
    SetBackendsResult,
    ValidationError,
    from_job_error,
)
from graph.types import Generation
from jobs.backend_list import write_backend_urls
from jobs.errors import JobError
from jobs.service.generations import JobService
from settings import redact_userinfo

__all__ = ["GenerationInput", "LoraInput", "Mutation"]


@strawberry.input
class LoraInput:
    name: str
    strength: float = 1.0


@strawberry.input(description="Parameters of a generation; unset fields take the template's defaults.")
class GenerationInput:
    template: str = "txt2img"
    prompt: str | None = strawberry.field(
        default=strawberry.UNSET, description="Required by templates that declare it (txt2img does)."
    )
    negative_prompt: str | None = strawberry.UNSET
    checkpoint: str | None = strawberry.UNSET
    loras: list[LoraInput] | None = strawberry.UNSET
    width: int | None = strawberry.UNSET
    height: int | None = strawberry.UNSET
    steps: int | None = strawberry.UNSET
    cfg: float | None = strawberry.UNSET
    sampler: str | None = strawberry.UNSET
    scheduler: str | None = strawberry.UNSET
    seed: float | None = strawberry.field(default=strawberry.UNSET, description="0 to 2^53-1; random when omitted.")
    batch_size: int | None = strawberry.UNSET
    extra: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="Parameters of operator templates not listed above."
    )

    def to_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        extra: dict[str, Any] = self.extra if isinstance(self.extra, dict) else {}
        params.update(extra)
        for name in (
            "prompt", "negative_prompt", "checkpoint", "width", "height", "steps",
            "cfg", "sampler", "scheduler", "batch_size",
        ):  # fmt: skip
            value = getattr(self, name)
            if value is not strawberry.UNSET and value is not None:
                params[name] = value
        if self.loras is not strawberry.UNSET and self.loras is not None:
            params["loras"] = [{"name": lora.name, "strength": lora.strength} for lora in self.loras]
        if self.seed is not strawberry.UNSET and self.seed is not None:
            seed = self.seed
            params["seed"] = int(seed) if math.isfinite(seed) and float(seed).is_integer() else seed
        return params


_ANONYMOUS = "authentication required: send a bearer API token"

_Outcome = GenerationPayload | DeletedGeneration | NotAllowedError | NotFoundError | JobResultError


async def _on_generation(
    info: strawberry.Info[Context, None],
    id: strawberry.ID,
    action: Callable[[JobService, uuid.UUID, models.User], Awaitable[_Outcome]],
) -> _Outcome:
    """The shared shape of the per-generation mutations: viewer, id, typed failures."""
    viewer = info.context.viewer_row
    if viewer is None:
        return NotAllowedError(message=_ANONYMOUS)
    gid = parse_id(id)
    if gid is None:
        return NotFoundError(message=f"no generation {id}")
    try:
        return await action(info.context.state.jobs, gid, viewer)
    except JobError as exc:
        return from_job_error(exc)


def _payload(row: models.Generation) -> GenerationPayload:
    return GenerationPayload(generation=Generation.from_row(row), created=False)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Queue a generation. The same idempotencyKey returns the same generation.")
    async def create_generation(
        self,
        info: strawberry.Info[Context, None],
        input: GenerationInput,
        idempotency_key: str | None = None,
    ) -> CreateGenerationResult:
        viewer = info.context.viewer_row
        if viewer is None:
            return NotAllowedError(message=_ANONYMOUS)
        try:
            created = await info.context.state.jobs.create(
                owner=viewer,
                template=input.template,
                params=input.to_params(),
                idempotency_key=idempotency_key,
            )
        except JobError as exc:
            return from_job_error(exc)  # type: ignore[return-value]
        return GenerationPayload(generation=Generation.from_row(created.generation), created=created.created)

    @strawberry.mutation(
        description=(
            "Queue an API-format ComfyUI workflow as it is (admins only; node classes are held to "
            "SAFELIGHT_RAW_NODE_CLASSES). Everyone else uses createGeneration with a template."
        )
    )
    async def create_workflow_generation(
        self,
        info: strawberry.Info[Context, None],
        workflow: JSON,
        idempotency_key: str | None = None,
    ) -> CreateGenerationResult:
        viewer = info.context.viewer_row
        if viewer is None or not viewer.is_admin:
            return NotAllowedError(message="raw workflows are for admins; use createGeneration with a template")
        try:
            created = await info.context.state.jobs.create_raw(
                owner=viewer, workflow=workflow, idempotency_key=idempotency_key
            )
        except JobError as exc:
            return from_job_error(exc)  # type: ignore[return-value]
        return GenerationPayload(generation=Generation.from_row(created.generation), created=created.created)

    @strawberry.mutation(description="Cancel a queued or running generation.")
    async def cancel_generation(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> CancelGenerationResult:
        async def cancel(jobs: JobService, gid: uuid.UUID, viewer: models.User) -> _Outcome:
            return _payload(await jobs.cancel(generation_id=gid, viewer=viewer))

        return await _on_generation(info, id, cancel)  # type: ignore[return-value]

    @strawberry.mutation(description="Run a FAILED or CANCELLED generation again (a new attempt).")
    async def retry_generation(self, info: strawberry.Info[Context, None], id: strawberry.ID) -> RetryGenerationResult:
        async def retry(jobs: JobService, gid: uuid.UUID, viewer: models.User) -> _Outcome:
            return _payload(await jobs.retry(generation_id=gid, viewer=viewer))

        return await _on_generation(info, id, retry)  # type: ignore[return-value]

    @strawberry.mutation(description="Delete a generation and its images (a running one is cancelled).")
    async def delete_generation(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> DeleteGenerationResult:
        async def delete(jobs: JobService, gid: uuid.UUID, viewer: models.User) -> _Outcome:
            await jobs.delete(generation_id=gid, viewer=viewer)
            return DeletedGeneration(id=id)

        return await _on_generation(info, id, delete)  # type: ignore[return-value]

    @strawberry.mutation(
        description=(
            "Replace the ComfyUI backend list (admins). Workers and API follow it within a heartbeat, "
            "without a restart; an empty list returns to COMFYUI_URLS."
        )
    )
    async def set_backends(self, info: strawberry.Info[Context, None], urls: list[str]) -> SetBackendsResult:
        viewer = info.context.viewer_row
        if viewer is None or not viewer.is_admin:
            return NotAllowedError(message="changing backends is for admins")
        state = info.context.state
        try:
            in_force = await write_backend_urls(state.redis, state.keys, urls)
        except ValueError as exc:
            return ValidationError(message="invalid backend list", errors=[FieldError(field="urls", message=str(exc))])
        state.catalogs.invalidate()
        return BackendList(urls=[redact_userinfo(url) for url in in_force or state.settings.comfyui_urls])
