"""db.payloads: each event payload's one definition, its wire keys and its round trips."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.events import events_after
from db.models import Generation, Image
from db.payloads import ErrorPayload, ImagePayload, PreviewPayload, ProgressPayload, StatusPayload, status_payload_sql
from db.states import Phase, Status
from db.transitions import transition
from tests.db.rows import new_generation, new_user


def test_progress_keys_are_the_ones_subscribers_have_always_read() -> None:
    progress = ProgressPayload(
        phase=Phase.BACKEND_WAIT,
        percent=12.5,
        node="3",
        node_class="KSampler",
        step=2,
        max_steps=20,
        queue_position=None,
        reason="no backend",
        retry_at=10.5,
        deadline_at=99.0,
        emitted_at=1.25,
    )
    assert progress.encode() == {
        "phase": "BACKEND_WAIT",
        "percent": 12.5,
        "node": "3",
        "nodeClass": "KSampler",
        "step": 2,
        "maxSteps": 20,
        "queuePosition": None,
        "reason": "no backend",
        "retryAt": 10.5,
        "deadlineAt": 99.0,
        "emittedAt": 1.25,
    }
    assert ProgressPayload.decode(json.loads(json.dumps(progress.encode()))) == progress


def test_progress_leaves_out_what_only_a_wait_or_a_step_carries() -> None:
    encoded = ProgressPayload(phase=Phase.EXECUTING, percent=50.0).encode()
    assert list(encoded) == ["phase", "percent", "node", "nodeClass", "step", "maxSteps", "queuePosition"]


def test_a_progress_message_from_an_older_sender_decodes_with_defaults() -> None:
    decoded = ProgressPayload.decode({"step": 3, "maxSteps": 10})
    assert decoded == ProgressPayload(phase=Phase.EXECUTING, percent=0.0, step=3, max_steps=10)


def test_a_new_phase_ends_the_wait_fields_it_does_not_set() -> None:
    waiting = ProgressPayload(phase=Phase.SUBMITTING).changed(
        phase=Phase.BACKEND_WAIT, reason="down", retry_at=5.0, deadline_at=9.0
    )
    assert (waiting.reason, waiting.retry_at, waiting.deadline_at) == ("down", 5.0, 9.0)
    same_phase = waiting.changed(percent=1.0)
    assert same_phase.reason == "down"
    untracked = waiting.changed(phase=Phase.UNTRACKED, reason="no events")
    assert (untracked.reason, untracked.retry_at, untracked.deadline_at) == ("no events", None, None)


def test_progress_columns_round_trip_through_a_row() -> None:
    progress = ProgressPayload(
        phase=Phase.RETRY_WAIT, percent=40.0, node="7", step=4, max_steps=8, queue_position=2, reason="r", retry_at=7.5
    )
    row = Generation(**progress.columns())
    assert row.retry_at == datetime.fromtimestamp(7.5, UTC)
    assert ProgressPayload.from_columns(row) == progress
    assert ProgressPayload.from_row(row).reason is None  # a job that takes over sets its own wait


def test_image_payload_is_its_row_and_its_event() -> None:
    image = ImagePayload(index=1, content_hash="ab" * 32, width=64, height=32, seed=7, size_bytes=123, mime="image/png")
    encoded = image.encode()
    assert {"index", "contentHash", "width", "height", "seed", "sizeBytes", "mime"} <= set(encoded)
    assert ImagePayload.decode(encoded) == image
    row = Image(generation_id=uuid.uuid4(), node_id="9", **image.columns())
    assert ImagePayload.from_row(row) == image


def test_status_and_preview_round_trip() -> None:
    failed = StatusPayload(Status.FAILED, 2, ErrorPayload("EXECUTION_ERROR", "boom", False, "3 (KSampler)", None))
    assert failed.encode() == {
        "status": "FAILED",
        "attempt": 2,
        "error": {
            "code": "EXECUTION_ERROR",
            "message": "boom",
            "retryable": False,
            "node": "3 (KSampler)",
            "input": None,
        },
    }
    assert StatusPayload.decode(failed.encode()) == failed
    assert StatusPayload.decode({"status": "RUNNING"}) == StatusPayload(Status.RUNNING)
    assert PreviewPayload.decode(PreviewPayload("tok", "image/jpeg").encode()) == PreviewPayload("tok", "image/jpeg")


async def test_status_events_the_database_writes_are_status_payloads(session: AsyncSession) -> None:
    owner = await new_user(session)
    created, _ = await new_generation(session, owner)
    gid = created.generation.id
    await transition(session, generation_id=gid, to=Status.RUNNING, values={"lease": "job"})
    failed = await transition(
        session,
        generation_id=gid,
        to=Status.FAILED,
        lease="job",
        values={"error_code": "X", "error_message": "m", "error_retryable": True, "error_node": "1 (A)"},
    )
    await session.commit()
    events = await events_after(session, generation_id=gid, after_seq=0)
    assert [StatusPayload.decode(e.payload).status for e in events] == [Status.QUEUED, Status.RUNNING, Status.FAILED]
    assert events[-1].payload == StatusPayload.from_row(failed.generation).encode()


def test_outputs_of_other_kinds_and_images_from_before_outputs_had_kinds() -> None:
    sound = ImagePayload(
        index=1, content_hash="ab" * 32, width=None, height=None, seed=3, size_bytes=9, mime="audio/flac",
        kind="audio", batch_index=1, duration_s=2.5, filename="a.flac",
    )  # fmt: skip
    encoded = sound.encode()
    assert encoded["durationSeconds"] == 2.5 and "durationS" not in encoded  # the one key not in camelCase
    assert (encoded["width"], encoded["batchIndex"]) == (None, 1)
    assert ImagePayload.decode(encoded) == sound
    assert set(sound.columns()) == {f.name for f in dataclasses.fields(ImagePayload)}
    old = {"index": 0, "contentHash": "cd" * 32, "width": 64, "height": 64, "seed": 7, "sizeBytes": 10}
    decoded = ImagePayload.decode({**old, "mime": "image/png"})  # published before migration 0009
    assert (decoded.kind, decoded.batch_index, decoded.duration_s, decoded.frames) == ("image", 0, None, None)


def test_a_status_outside_the_vocabulary_is_refused() -> None:
    with pytest.raises(ValueError, match="NOT_A_STATUS"):
        StatusPayload.decode({"status": "NOT_A_STATUS"})


OOM = {"error_code": "OOM", "error_message": "out of memory", "error_retryable": True}


@pytest.mark.parametrize("error", [None, OOM])
async def test_the_status_payload_postgresql_builds_is_the_one_python_encodes(
    session: AsyncSession, error: dict[str, object] | None
) -> None:
    """status_payload_sql, read straight from a row (with and without an error: its null, not an object)."""
    owner = await new_user(session)
    created, _ = await new_generation(session, owner)
    gid = created.generation.id
    await transition(session, generation_id=gid, to=Status.RUNNING, values={"lease": "job"})
    await transition(session, generation_id=gid, to=Status.FAILED, lease="job", values=error)
    await session.commit()
    table = Generation.__table__
    built = (await session.execute(select(status_payload_sql(table)).where(table.c.id == gid))).scalar_one()
    row = (await session.execute(select(Generation).where(Generation.id == gid))).scalar_one()
    assert built == StatusPayload.from_row(row).encode()
    assert (built["error"] is None) == (error is None)
