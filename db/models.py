"""Table models. These are storage shapes, not API shapes: graph/ converts rows explicitly."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from db.states import Phase, Status
from settings import DEFAULT_NAMESPACE

__all__ = [
    "ApiToken",
    "Base",
    "Generation",
    "GenerationEvent",
    "Image",
    "Input",
    "TemplateRecord",
    "TemplateVersion",
    "User",
]


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONB, uuid.UUID: UUID(as_uuid=True)}


def _now() -> Any:
    return func.now()


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class ApiToken(Base):
    """Only the SHA-256 of a token is stored; the token itself is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # None: never
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TemplateRecord(Base):
    """A template by name; its versions are immutable rows of `template_versions`."""

    __tablename__ = "templates"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # 'shipped' | 'directory' | 'uploaded'
    current_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class TemplateVersion(Base):
    """One saved version of a template: never updated, so a generation's version says what it ran."""

    __tablename__ = "template_versions"
    __table_args__ = (UniqueConstraint("template_name", "version", name="uq_template_version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    template_name: Mapped[str] = mapped_column(ForeignKey("templates.name"))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    workflow: Mapped[dict[str, Any]] = mapped_column(JSONB)  # API format
    params: Mapped[list[Any]] = mapped_column(JSONB)  # the params list, as in *.params.json
    source_format: Mapped[str] = mapped_column(String(8))  # 'api' | 'ui': what the admin uploaded
    digest: Mapped[str] = mapped_column(CHAR(64))  # sha256 of the canonical workflow + params JSON
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


_status_enum = Enum(Status, name="generation_status", values_callable=lambda e: [m.value for m in e])
_phase_enum = Enum(Phase, name="generation_phase", values_callable=lambda e: [m.value for m in e])


class Generation(Base):
    __tablename__ = "generations"
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key", name="uq_generation_idempotency"),
        Index("ix_generations_owner_created", "owner_id", "created_at", "id"),
        Index("ix_generations_status", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    template: Mapped[str] = mapped_column(String(100))
    params: Mapped[dict[str, Any]] = mapped_column(JSONB)
    prompt: Mapped[str] = mapped_column(Text, default="")  # denormalised for search
    seed: Mapped[int] = mapped_column(BigInteger)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # The exact template version the generation runs (the worker builds from it, never from "the
    # current"); NULL for raw workflows and rows older than templates in the database.
    template_version_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("template_versions.id"))

    status: Mapped[Status] = mapped_column(_status_enum, default=Status.QUEUED)
    phase: Mapped[Phase] = mapped_column(_phase_enum, default=Phase.WAITING)
    percent: Mapped[float] = mapped_column(Float, default=0.0)
    step: Mapped[int | None] = mapped_column(Integer)
    max_steps: Mapped[int | None] = mapped_column(Integer)
    current_node: Mapped[str | None] = mapped_column(String(200))
    queue_position: Mapped[int | None] = mapped_column(Integer)
    # Why the generation waits (BACKEND_WAIT, RETRY_WAIT, UNTRACKED), its next try, and when waiting
    # for a backend gives up: shown to subscribers and readers beside the phase.
    phase_reason: Mapped[str | None] = mapped_column(Text)
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    attempt: Mapped[int] = mapped_column(Integer, default=1)
    # The Safelight namespace (SAFELIGHT_NAMESPACE: its Redis queue, workers and heartbeats) whose
    # workers run this generation; recovery only takes over generations of its own namespace.
    namespace: Mapped[str] = mapped_column(String(64), server_default=DEFAULT_NAMESPACE)
    # Which job execution owns the generation while it runs; writes from a
    # worker that lost ownership (a stale lease) match no row.
    lease: Mapped[str | None] = mapped_column(String(200))
    backend_url: Mapped[str | None] = mapped_column(String(500))
    prompt_id: Mapped[str | None] = mapped_column(String(64))

    error_code: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_retryable: Mapped[bool | None] = mapped_column(Boolean)
    error_node: Mapped[str | None] = mapped_column(String(200))
    error_input: Mapped[str | None] = mapped_column(String(200))  # the node input the error names

    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now(), onupdate=_now())


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("generation_id", "index", name="uq_image_index"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    generation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    mime: Mapped[str] = mapped_column(String(50), default="image/png")
    # 'image' | 'animation' | 'video' | 'audio' | 'text' (jobs/media.py OutputKind); the size in pixels,
    # frames and duration where the kind has them (null otherwise: a sound has no width).
    kind: Mapped[str] = mapped_column(String(16), default="image", server_default="image")
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    frames: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    seed: Mapped[int] = mapped_column(BigInteger)
    batch_index: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # within its output node
    size_bytes: Mapped[int] = mapped_column(Integer)
    node_id: Mapped[str] = mapped_column(String(100), default="")
    filename: Mapped[str] = mapped_column(String(200), default="", server_default="")  # ComfyUI's file name
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class GenerationEvent(Base):
    """The durable event log: status changes, images, errors, each with its sequence number."""

    __tablename__ = "generation_events"
    # myGenerationEvents reads one owner's events after a (created_at, generation_id, seq) position.
    __table_args__ = (Index("ix_generation_events_created_at", "created_at"),)

    generation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class Input(Base):
    """An uploaded image or mask, usable as an IMAGE/MASK parameter by its owner (migration 0008).

    The bytes live in the content-addressed store under `content_hash`; one row per owner and content,
    so the same file uploaded twice is one input.
    """

    __tablename__ = "inputs"
    __table_args__ = (
        UniqueConstraint("owner_id", "content_hash", name="uq_input_owner_content"),
        # The hourly upload count of one owner, and "is this stored file still used" on deletes.
        Index("ix_inputs_owner_created", "owner_id", "created_at"),
        Index("ix_inputs_content_hash", "content_hash"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    content_hash: Mapped[str] = mapped_column(String(64))
    mime: Mapped[str] = mapped_column(String(50))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(200), default="")  # the uploader's name, display only
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
