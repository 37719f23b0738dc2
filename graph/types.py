"""GraphQL object types. Rows are converted explicitly (`from_row`); no ORM object leaks out."""

from __future__ import annotations

import asyncio
import enum
import re
import uuid
from datetime import datetime
from urllib.parse import urlsplit

import strawberry
from strawberry.scalars import JSON

from db import models
from db.events import EventKind as DbEventKind
from db.payloads import ErrorPayload, ImagePayload, ProgressPayload, StatusPayload
from db.states import Phase as DbPhase
from db.states import Status as DbStatus
from graph.context import Context
from graph.loaders import then
from jobs.media import THUMBNAILED_KINDS
from jobs.media import OutputKind as MediaKind

__all__ = [
    "EventKind",
    "Generation",
    "GenerationError",
    "GenerationEvent",
    "Image",
    "Lora",
    "OutputKind",
    "Phase",
    "Progress",
    "Status",
    "User",
]

strawberry.enum(DbStatus, description="The one lifecycle vocabulary of a generation.")
strawberry.enum(DbPhase, description="What a generation is doing now, finer than its status.")
strawberry.enum(MediaKind, name="OutputKind", description="What an output is; its mime type says its format.")
Status = DbStatus
Phase = DbPhase
OutputKind = MediaKind
MAX_TEXT_BYTES = 64 * 1024  # of a text output, in `Image.text`


@strawberry.enum(description="What an event says. SNAPSHOT is the full state sent first to a new subscriber.")
class EventKind(enum.Enum):
    SNAPSHOT = "SNAPSHOT"
    STATUS = DbEventKind.STATUS.value
    IMAGE = DbEventKind.IMAGE.value
    PROGRESS = DbEventKind.PROGRESS.value
    PREVIEW = DbEventKind.PREVIEW.value
    DELETED = DbEventKind.DELETED.value


_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)


def backend_name(url: str | None) -> str | None:
    """What users see of a backend URL: its host and port, without scheme, credentials or path."""
    if not url:
        return None
    netloc = urlsplit(url).netloc or url
    return netloc.rpartition("@")[2] or None


def hide_urls(text: str) -> str:
    """`text` with each URL replaced by its backend name (messages written by workers name backends)."""
    return _URL.sub(lambda m: backend_name(m.group(0)) or "", text) if "://" in text else text


@strawberry.type
class User:
    id: strawberry.ID
    name: str
    is_admin: bool

    @classmethod
    def from_row(cls, row: models.User) -> User:
        return cls(id=strawberry.ID(str(row.id)), name=row.name, is_admin=row.is_admin)


@strawberry.type(
    description=(
        "One output of a generation: an image, an animation, a video, a sound or a text (`kind`). The name "
        "stays Image for the clients that know it."
    )
)
class Image:
    index: int = strawberry.field(description="Its place among the generation's outputs (what its URLs name).")
    kind: OutputKind
    batch_index: int = strawberry.field(
        description="Its place in its node's batch; with the seed, what makes it again (a batch shares one seed)."
    )
    content_hash: str
    url: str = strawberry.field(
        description=(
            "Absolute URL of the full output, served with its real Content-Type (Range requests work): names "
            "this generation's output (not its content), works for anyone who has it, never changes, and "
            "stops working when the generation is deleted."
        )
    )
    download_url: str = strawberry.field(
        description=(
            "`url` as an attachment named <template>-<generation id, 8 characters>-<index>-<seed>.<extension>; "
            "a PNG keeps ComfyUI's embedded prompt and workflow."
        )
    )
    thumbnail_url: str | None = strawberry.field(
        description="Absolute URL of a 256 px PNG thumbnail (same rules as url); null for kinds that are no image."
    )
    width: int | None = strawberry.field(description="In pixels; null for audio, text and video.")
    height: int | None = strawberry.field(description="In pixels; null for audio, text and video.")
    frames: int | None = strawberry.field(description="An animation's frame count; null otherwise.")
    duration_seconds: float | None = strawberry.field(
        description="An animation's (sum of its frame durations) or a WAV sound's length; null where unknown."
    )
    seed: strawberry.Private[int]
    size_bytes: int
    mime: str

    @strawberry.field(description="The seed the output was made with (a JavaScript-safe integer).")
    def seed_value(self) -> float:
        return float(self.seed)

    @strawberry.field(description="A text output's text (its first 64 KB); null for the other kinds.")
    async def text(self, info: strawberry.Info[Context, None]) -> str | None:
        if self.kind is not OutputKind.TEXT:
            return None
        store = info.context.state.store
        return await asyncio.to_thread(store.read_text, self.content_hash, max_bytes=MAX_TEXT_BYTES)

    @classmethod
    def from_row(cls, row: models.Image, *, base_url: str) -> Image:
        return cls.from_payload(ImagePayload.from_row(row), base_url=base_url, generation_id=row.generation_id)

    @classmethod
    def from_payload(cls, payload: ImagePayload, *, base_url: str, generation_id: uuid.UUID) -> Image:
        # By generation and index, not by content hash: the same output made by two users has two URLs,
        # and a deleted generation's URLs stop answering (graph/app.py serves them from the image rows).
        url = f"{base_url}/images/{generation_id}/{payload.index}"
        kind = _kind(payload.kind)
        thumbnail = f"{base_url}/thumbs/256/{generation_id}/{payload.index}" if kind in THUMBNAILED_KINDS else None
        return cls(
            index=payload.index,
            kind=kind,
            batch_index=payload.batch_index,
            content_hash=payload.content_hash,
            url=url,
            download_url=f"{url}?download=1",
            thumbnail_url=thumbnail,
            width=payload.width,
            height=payload.height,
            frames=payload.frames,
            duration_seconds=payload.duration_s,
            seed=payload.seed,
            size_bytes=payload.size_bytes,
            mime=payload.mime,
        )


def _kind(value: str) -> OutputKind:
    """A kind this API does not know yet (a newer worker's) shows as what its bytes are likeliest to be."""
    try:
        return OutputKind(value)
    except ValueError:
        return OutputKind.IMAGE


@strawberry.type
class Progress:
    phase: Phase
    percent: float = strawberry.field(description="Whole-graph progress, 0 to 100 (see comfy/progress.py).")
    node: str | None
    node_class: str | None
    step: int | None
    max_steps: int | None
    known_queue_position: strawberry.Private[int | None]
    emitted_at: float | None = strawberry.field(
        default=None, description="When the backend reported this step (unix seconds), if it says."
    )
    waiting_row: strawberry.Private[uuid.UUID | None] = None  # set while in Safelight's own queue
    reason: str | None = strawberry.field(
        default=None,
        description="Why it waits or is not tracked, for people to read (BACKEND_WAIT, RETRY_WAIT, UNTRACKED).",
    )
    retry_at: float | None = strawberry.field(
        default=None, description="When the next try happens (unix seconds), in RETRY_WAIT and BACKEND_WAIT."
    )
    deadline_at: float | None = strawberry.field(
        default=None, description="When waiting for a backend gives up (unix seconds), in BACKEND_WAIT."
    )

    @strawberry.field(
        description=(
            "While waiting: 1 = next. In phase WAITING the place in Safelight's queue; "
            "in BACKEND_QUEUE how many prompts run or wait before this one on its ComfyUI backend."
        )
    )
    def queue_position(self, info: strawberry.Info[Context, None]) -> int | None:
        if self.known_queue_position is not None or self.waiting_row is None:
            return self.known_queue_position
        return info.context.loaders.queue_positions.load(self.waiting_row)  # type: ignore[return-value]

    @classmethod
    def from_payload(cls, payload: ProgressPayload, *, waiting_row: uuid.UUID | None = None) -> Progress:
        return cls(
            phase=payload.phase,
            percent=payload.percent,
            node=payload.node,
            node_class=payload.node_class,
            step=payload.step,
            max_steps=payload.max_steps,
            known_queue_position=payload.queue_position,
            emitted_at=payload.emitted_at,
            waiting_row=waiting_row,
            reason=None if payload.reason is None else hide_urls(payload.reason),
            retry_at=payload.retry_at,
            deadline_at=payload.deadline_at,
        )


@strawberry.type
class GenerationError:
    code: str
    message: str
    retryable: bool
    node: str | None = strawberry.field(description="The failing ComfyUI node, as 'id (class)'.")
    input: str | None = strawberry.field(
        default=None, description="The input of that node the error is about, when ComfyUI names one."
    )

    @classmethod
    def from_payload(cls, payload: ErrorPayload | None) -> GenerationError | None:
        if payload is None:
            return None
        return cls(
            code=payload.code,
            message=hide_urls(payload.message or ""),
            retryable=bool(payload.retryable),
            node=payload.node,
            input=payload.input,
        )


@strawberry.type
class Lora:
    name: str
    strength: float


@strawberry.type
class Generation:
    id: strawberry.ID
    template: str
    status: Status
    progress: Progress
    attempt: int
    seed: strawberry.Private[int]
    parameters: JSON = strawberry.field(description="The validated parameters, seed included.")
    prompt: str
    error: GenerationError | None
    backend: str | None = strawberry.field(
        description="The ComfyUI backend of the current attempt, by name (host:port): never its URL or credentials."
    )
    prompt_id: str | None = strawberry.field(description="The ComfyUI prompt id of the current attempt.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_seq: int = strawberry.field(description="Sequence number of the latest durable event.")
    owner_id: strawberry.Private[uuid.UUID]
    row_id: strawberry.Private[uuid.UUID]
    template_version_id: strawberry.Private[uuid.UUID | None] = None

    @strawberry.field(
        description="The template version it ran; a later edit of the template changes nothing here (null: raw)."
    )
    async def template_version(self, info: strawberry.Info[Context, None]) -> int | None:
        if self.template_version_id is None:
            return None
        found = await info.context.state.templates.version(self.template_version_id)  # cached: versions never change
        return None if found is None else found.version

    @strawberry.field(description="The seed actually used (a JavaScript-safe integer).")
    def seed_used(self) -> float:
        return float(self.seed)

    @strawberry.field
    def loras(self) -> list[Lora]:
        raw = self.parameters.get("loras") if isinstance(self.parameters, dict) else None
        return [Lora(name=str(x["name"]), strength=float(x["strength"])) for x in raw or []]

    # Sync resolvers returning DataLoader futures (see graph.loaders.then): batched, and nothing
    # is left un-awaited when a subscriber vanishes mid-execution.
    @strawberry.field
    def images(self, info: strawberry.Info[Context, None]) -> list[Image]:
        base_url = info.context.base_url
        rows = info.context.loaders.images.load(self.row_id)
        return then(rows, lambda found: [Image.from_row(r, base_url=base_url) for r in found])  # type: ignore[return-value]

    @strawberry.field
    def owner(self, info: strawberry.Info[Context, None]) -> User | None:
        row = info.context.loaders.users.load(self.owner_id)
        return then(row, lambda found: None if found is None else User.from_row(found))  # type: ignore[return-value]

    @classmethod
    def from_row(cls, row: models.Generation) -> Generation:
        return cls(
            id=strawberry.ID(str(row.id)),
            template=row.template,
            status=row.status,
            progress=Progress.from_payload(
                ProgressPayload.from_columns(row), waiting_row=row.id if row.status is DbStatus.QUEUED else None
            ),
            attempt=row.attempt,
            seed=row.seed,
            parameters=JSON(dict(row.params)),
            prompt=row.prompt,
            error=GenerationError.from_payload(StatusPayload.from_row(row).error),
            backend=backend_name(row.backend_url),
            prompt_id=row.prompt_id,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            last_seq=row.last_seq,
            owner_id=row.owner_id,
            row_id=row.id,
            template_version_id=row.template_version_id,
        )


@strawberry.type(description="One step in a generation's life, as delivered to subscribers.")
class GenerationEvent:
    generation_id: strawberry.ID
    seq: int = strawberry.field(
        description="Durable events carry their own sequence number; PROGRESS/PREVIEW the last durable one."
    )
    kind: EventKind
    at: float = strawberry.field(description="Unix time the event was produced.")
    terminal: bool = strawberry.field(description="True on the last event: the subscription completes after it.")
    status: Status | None = None
    attempt: int | None = None
    error: GenerationError | None = None
    progress: Progress | None = None
    image: Image | None = None
    preview_url: str | None = strawberry.field(default=None, description="Short-lived preview image URL.")
    generation: Generation | None = strawberry.field(default=None, description="Full state, on SNAPSHOT.")
    cursor: str | None = strawberry.field(
        default=None, description="On durable events: pass as `after` to myGenerationEvents to resume after it."
    )
