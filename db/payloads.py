"""The payload of each generation event, one typed definition each, with its wire form.

A payload travels from the worker to the browser through Redis (jobs/bus.py), the event log
(`generation_events.payload`, JSONB) and the GraphQL types (graph/types.py); every hop uses the class
here, so a key is spelled once. The wire form is JSON with camelCase keys (what the log has always
stored); the Python side uses the field names, which are also the database column names where a
payload mirrors a row.

Adding a field is a one-place change: declare it on the class, with a default so that events stored or
published before it still decode. `field(metadata=wire(...))` names a key that is not the field's
camelCase form, leaves the key out while the value is None (`omit_none`), or converts a JSON value.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from sqlalchemy import String, case, func, literal_column, null

from db.models import Generation, Image
from db.states import Phase, Status

__all__ = [
    "ErrorPayload",
    "ImagePayload",
    "PreviewPayload",
    "ProgressPayload",
    "StatusPayload",
    "status_payload_sql",
    "wire",
]


def wire(*, key: str | None = None, omit_none: bool = False, decode: Any = None) -> dict[str, Any]:
    """A payload field's `metadata`: its JSON `key` (default: the field name in camelCase), whether a None
    value is left out of the JSON, and how a JSON value becomes the field's type (`decode`)."""
    return {"key": key, "omit_none": omit_none, "decode": decode}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    key: str
    omit_none: bool
    decode: Callable[[Any], Any] | None


_KEYS: dict[type, tuple[_Key, ...]] = {}  # per payload class, read from its fields once


def _keys(cls: type) -> tuple[_Key, ...]:
    keys = _KEYS.get(cls)
    if keys is None:
        keys = _KEYS[cls] = tuple(
            _Key(
                f.name,
                f.metadata.get("key") or _camel(f.name),
                bool(f.metadata.get("omit_none")),
                f.metadata.get("decode"),
            )
            for f in dataclasses.fields(cls)
        )
    return keys


def _json(value: Any) -> Any:
    """A field with a `decode` holds what JSON does not (an enum, a payload): its JSON form."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, _Payload):
        return value.encode()
    return value


class _Payload:
    """encode/decode for the dataclasses below (their fields say everything)."""

    __slots__ = ()

    def encode(self) -> dict[str, Any]:
        """The JSON object (keys in field order) sent on the bus and stored in the log."""
        out: dict[str, Any] = {}
        for k in _keys(type(self)):
            value = getattr(self, k.name)
            if value is None:
                if not k.omit_none:
                    out[k.key] = None
            else:
                out[k.key] = value if k.decode is None else _json(value)
        return out

    def replace(self, **changes: Any) -> Self:
        """This payload with `changes` (field names); `dataclasses.replace` without its checks, since
        progress is replaced once per ComfyUI message."""
        values = {k.name: getattr(self, k.name) for k in _keys(type(self))}
        values.update(changes)
        build: Callable[..., Self] = type(self)
        return build(**values)

    @classmethod
    def decode(cls, data: Mapping[str, Any]) -> Self:
        """From the JSON object; a key it lacks takes the field's default (an older sender's event)."""
        values: dict[str, Any] = {}
        for k in _keys(cls):
            if k.key in data:
                value = data[k.key]
                values[k.name] = value if value is None or k.decode is None else k.decode(value)
        build: Callable[..., Self] = cls
        return build(**values)


@dataclass(frozen=True, slots=True)
class ErrorPayload(_Payload):
    """Why an attempt failed (the generation's `error_*` columns)."""

    code: str
    message: str | None = None
    retryable: bool | None = None
    node: str | None = None  # the failing ComfyUI node, as 'id (class)'
    input: str | None = None  # the node input the error is about


@dataclass(frozen=True, slots=True)
class StatusPayload(_Payload):
    """A STATUS event: the status reached, the attempt it belongs to, and its error if any."""

    status: Status = field(metadata=wire(decode=Status))
    attempt: int | None = None
    error: ErrorPayload | None = field(default=None, metadata=wire(decode=ErrorPayload.decode))

    @classmethod
    def from_row(cls, generation: Generation) -> StatusPayload:
        error = None
        if generation.error_code is not None:
            error = ErrorPayload(
                code=generation.error_code,
                message=generation.error_message,
                retryable=generation.error_retryable,
                node=generation.error_node,
                input=generation.error_input,
            )
        return cls(status=generation.status, attempt=generation.attempt, error=error)


def _error_column(name: str) -> str:
    return f"error_{name}"


def status_payload_sql(row: Any) -> Any:
    """`StatusPayload.from_row(...).encode()` computed by PostgreSQL, from the columns of `row` (a table
    or a CTE returning generation columns): the status events a statement writes in the same round trip."""

    def key(name: str) -> Any:
        return literal_column(f"'{name}'", String)

    pairs: list[Any] = []
    for k in _keys(ErrorPayload):
        pairs += [key(k.key), row.c[_error_column(k.name)]]
    error = case((row.c.error_code.is_(None), null()), else_=func.jsonb_build_object(*pairs))
    columns = {"status": row.c.status, "attempt": row.c.attempt, "error": error}
    status_pairs: list[Any] = []
    for k in _keys(StatusPayload):
        status_pairs += [key(k.key), columns[k.name]]
    return func.jsonb_build_object(*status_pairs)


def _unix(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _moment(unix: float | None) -> datetime | None:
    return None if unix is None else datetime.fromtimestamp(unix, UTC)


@dataclass(frozen=True, slots=True)
class ProgressPayload(_Payload):
    """A PROGRESS event: what the generation does now (ephemeral on the bus; the row keeps a snapshot).

    `reason`, `retry_at` and `deadline_at` belong to a waiting (or untracked) phase and are absent
    otherwise; `emitted_at` is the backend's own time of a step, on the messages that have one.
    """

    # A message without a phase came from a worker that only sent it while ComfyUI executed.
    phase: Phase = field(default=Phase.EXECUTING, metadata=wire(decode=Phase))
    percent: float = field(default=0.0, metadata=wire(decode=float))
    node: str | None = None
    node_class: str | None = None
    step: int | None = None
    max_steps: int | None = None
    queue_position: int | None = None
    reason: str | None = field(default=None, metadata=wire(omit_none=True))
    retry_at: float | None = field(default=None, metadata=wire(omit_none=True))  # unix seconds
    deadline_at: float | None = field(default=None, metadata=wire(omit_none=True))  # unix seconds
    emitted_at: float | None = field(default=None, metadata=wire(omit_none=True))  # unix seconds

    WAIT_FIELDS = ("reason", "retry_at", "deadline_at")
    """The fields a phase that waits carries: they end with it."""

    def changed(self, **changes: Any) -> ProgressPayload:
        """This progress after `changes` (field names); a new phase drops the wait fields it does not set."""
        if "phase" in changes and changes["phase"] is not self.phase:
            for name in self.WAIT_FIELDS:
                changes.setdefault(name, None)
        return self.replace(**changes)

    @classmethod
    def from_row(cls, generation: Generation) -> ProgressPayload:
        """The progress the row last recorded (a job that takes a generation over goes on from it).

        Its wait fields are left out: the phase a resumed job enters next sets its own.
        """
        return cls(
            phase=generation.phase,
            percent=generation.percent,
            node=generation.current_node,
            step=generation.step,
            max_steps=generation.max_steps,
            queue_position=generation.queue_position,
        )

    def columns(self) -> dict[str, Any]:
        """The generation row's progress columns (its snapshot for late readers)."""
        return {
            "phase": self.phase,
            "percent": self.percent,
            "step": self.step,
            "max_steps": self.max_steps,
            "current_node": self.node,
            "queue_position": self.queue_position,
            "phase_reason": self.reason,
            "retry_at": _moment(self.retry_at),
            "deadline_at": _moment(self.deadline_at),
        }

    @classmethod
    def from_columns(cls, generation: Generation) -> ProgressPayload:
        """What `columns()` stored, wait fields included (the row as readers see it)."""
        return dataclasses.replace(
            cls.from_row(generation),
            reason=generation.phase_reason,
            retry_at=_unix(generation.retry_at),
            deadline_at=_unix(generation.deadline_at),
        )


@dataclass(frozen=True, slots=True)
class ImagePayload(_Payload):
    """An IMAGE event: one stored output. Its fields are also the `images` row's columns, by name.

    Any output kind (image, animation, video, audio, text; migration 0009): width and height are None
    where the kind has none; events published before 0009 decode as images of batch index 0.
    """

    index: int
    content_hash: str
    width: int | None
    height: int | None
    seed: int
    size_bytes: int
    mime: str
    kind: str = "image"
    batch_index: int = 0
    duration_s: float | None = field(default=None, metadata=wire(key="durationSeconds"))
    frames: int | None = None
    filename: str = ""

    def columns(self) -> dict[str, Any]:
        """The `images` row's values (all but the generation id and node)."""
        return {k.name: getattr(self, k.name) for k in _keys(type(self))}

    @classmethod
    def from_row(cls, image: Image) -> ImagePayload:
        return cls(**{k.name: getattr(image, k.name) for k in _keys(cls)})


@dataclass(frozen=True, slots=True)
class PreviewPayload(_Payload):
    """A PREVIEW event: a short-lived preview image, kept in Redis under `token`."""

    token: str
    mime: str
