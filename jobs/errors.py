"""Expected failures of job operations; the API turns each into a typed result."""

from __future__ import annotations

from dataclasses import dataclass

from db.states import Status

__all__ = [
    "BackendUnavailable",
    "FieldProblem",
    "InvalidState",
    "JobError",
    "NotAllowed",
    "NotFound",
    "QuotaExceeded",
    "Rejected",
]


class JobError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    message: str


class Rejected(JobError):
    """The request's parameters are invalid; each problem names its field."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


class QuotaExceeded(JobError):
    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class NotFound(JobError):
    pass


class InvalidState(JobError):
    def __init__(self, message: str, *, status: Status) -> None:
        super().__init__(message)
        self.status = status


class BackendUnavailable(JobError):
    pass


class NotAllowed(JobError):
    """The viewer may not do this (e.g. a raw workflow without the admin role)."""
