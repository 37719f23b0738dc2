"""Expected failures as schema types, and the union results of each mutation."""

from __future__ import annotations

import re
from typing import Annotated

import strawberry

from graph.types import Generation, Status
from jobs import errors

__all__ = [
    "BackendList",
    "BackendUnavailableError",
    "CancelGenerationResult",
    "CreateGenerationResult",
    "DeleteGenerationResult",
    "DeletedGeneration",
    "FieldError",
    "GenerationPayload",
    "InvalidStateError",
    "JobResultError",
    "NotAllowedError",
    "NotFoundError",
    "QuotaExceededError",
    "RetryGenerationResult",
    "SetBackendsResult",
    "ValidationError",
    "api_field_name",
    "from_job_error",
]


@strawberry.type
class FieldError:
    field: str = strawberry.field(description="The input field, as named in the schema (e.g. loras[1].strength).")
    message: str


@strawberry.type
class ValidationError:
    message: str
    errors: list[FieldError]


@strawberry.type
class NotFoundError:
    message: str


@strawberry.type
class NotAllowedError:
    message: str


@strawberry.type
class InvalidStateError:
    message: str
    status: Status


@strawberry.type
class QuotaExceededError:
    message: str
    limit: int


@strawberry.type
class BackendUnavailableError:
    message: str


@strawberry.type
class GenerationPayload:
    generation: Generation
    created: bool = strawberry.field(description="False when an idempotency key returned an existing generation.")


@strawberry.type
class DeletedGeneration:
    id: strawberry.ID


@strawberry.type
class BackendList:
    urls: list[str] = strawberry.field(description="The ComfyUI URLs now in force.")


SetBackendsResult = Annotated[
    BackendList | ValidationError | NotAllowedError,
    strawberry.union("SetBackendsResult"),
]
CreateGenerationResult = Annotated[
    GenerationPayload | ValidationError | QuotaExceededError | BackendUnavailableError | NotAllowedError,
    strawberry.union("CreateGenerationResult"),
]
CancelGenerationResult = Annotated[
    GenerationPayload | NotFoundError | InvalidStateError | NotAllowedError,
    strawberry.union("CancelGenerationResult"),
]
RetryGenerationResult = Annotated[
    GenerationPayload | NotFoundError | InvalidStateError | QuotaExceededError | NotAllowedError,
    strawberry.union("RetryGenerationResult"),
]
DeleteGenerationResult = Annotated[
    DeletedGeneration | NotFoundError | NotAllowedError,
    strawberry.union("DeleteGenerationResult"),
]

_CAMEL = re.compile(r"_([a-z0-9])")
_HEAD = re.compile(r"[^.\[]*")


def api_field_name(name: str) -> str:
    """Template parameter names are snake_case; the schema's input fields are camelCase.

    Only the leading parameter name is converted: what follows it (`loras[1].strength`,
    `workflow.7.class_type`) names keys inside the value as the client sent them.
    """
    match = _HEAD.match(name)
    head = match.group(0) if match else name
    return _CAMEL.sub(lambda m: m.group(1).upper(), head) + name[len(head) :]


JobResultError = (
    ValidationError | QuotaExceededError | BackendUnavailableError | NotFoundError | InvalidStateError | NotAllowedError
)


def from_job_error(exc: errors.JobError) -> JobResultError:
    if isinstance(exc, errors.Rejected):
        fields = [FieldError(field=api_field_name(p.field), message=p.message) for p in exc.problems]
        return ValidationError(message="invalid parameters", errors=fields)
    if isinstance(exc, errors.QuotaExceeded):
        return QuotaExceededError(message=str(exc), limit=exc.limit)
    if isinstance(exc, errors.BackendUnavailable):
        return BackendUnavailableError(message=str(exc))
    if isinstance(exc, errors.InvalidState):
        return InvalidStateError(message=str(exc), status=exc.status)
    if isinstance(exc, errors.NotFound):
        return NotFoundError(message=str(exc))
    if isinstance(exc, errors.NotAllowed):
        return NotAllowedError(message=str(exc))
    raise TypeError(f"unexpected job error {exc!r}")
