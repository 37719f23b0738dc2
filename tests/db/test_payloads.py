"""db.payloads: one typed definition per event payload, its wire form, and the SQL that writes the STATUS one."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Generation
from db.payloads import (
    ErrorPayload,
    ImagePayload,
    PreviewPayload,
    ProgressPayload,
    StatusPayload,
    status_payload_sql,
)
from db.states import Phase, Status
from db.transitions import transition
from tests.db.rows import new_generation, new_user


def test_progress_wire_form_is_camel_case_and_leaves_out_absent_wait_fields() -> None:
    progress = ProgressPayload(
        phase=Phase.EXECUTING, percent=40.0, node="3", node_class="KSampler", step=4, max_steps=10
    )
    assert progress.encode() == {
        "phase": "EXECUTING",
        "percent": 40.0,
        "node": "3",
        "nodeClass": "KSampler",
        "step": 4,
        "maxSteps": 10,
        "queuePosition": None,  # None is sent as null, except for the wait fields and emittedAt
    }
    waiting = ProgressPayload(phase=Phase.BACKEND_WAIT, reason="unreachable", retry_at=10.5, deadline_at=99.0)
    encoded = waiting.encode()
    assert (encoded["reason"], encoded["retryAt"], encoded["deadlineAt"]) == ("unreachable", 10.5, 99.0)
    assert "emittedAt" not in encoded
    assert ProgressPayload.decode(encoded) == waiting
    assert ProgressPayload.decode(progress.encode()) == progress


def test_an_older_senders_progress_decodes_with_defaults() -> None:
    """A message without a phase came from a worker that only sent progress while ComfyUI executed;
    an integer percent (JSON has no float type) becomes a float."""
    decoded = ProgressPayload.decode({"percent": 50, "step": 5})
    assert decoded == ProgressPayload(phase=Phase.EXECUTING, percent=50.0, step=5)
    assert isinstance(decoded.percent, float)


def test_a_new_phase_drops_the_wait_fields_it_does_not_set() -> None:
    waiting = ProgressPayload(phase=Phase.BACKEND_WAIT, reason="unreachable", retry_at=1.0, deadline_at=2.0)
    assert waiting.changed(percent=5.0) == waiting.replace(percent=5.0), "same phase: the wait goes on"
    assert waiting.changed(phase=Phase.BACKEND_WAIT, retry_at=3.0).reason == "unreachable"
    running = waiting.changed(phase=Phase.EXECUTING, step=1)
    assert (running.reason, running.retry_at, running.deadline_at) == (None, None, None)
    untracked = waiting.changed(phase=Phase.UNTRACKED, reason="no websocket")
    assert (untracked.reason, untracked.retry_at, untracked.deadline_at) == ("no websocket", None, None)


def test_progress_columns_round_trip_through_a_row() -> None:
    progress = ProgressPayload(
        phase=Phase.RETRY_WAIT, percent=12.5, node="7", step=2, max_steps=8, queue_position=3,
        reason="http 500", retry_at=1_700_000_000.25, deadline_at=1_700_000_100.0,
    )  # fmt: skip
    columns = progress.columns()
    assert columns["retry_at"] == datetime.fromtimestamp(1_700_000_000.25, UTC)
    row = Generation(**columns)
    assert ProgressPayload.from_columns(row) == progress.replace(node_class=None)
    assert ProgressPayload.from_row(row) == progress.replace(reason=None, retry_at=None, deadline_at=None)


def test_status_with_an_error_round_trips() -> None:
    status = StatusPayload(
        status=Status.FAILED,
        attempt=2,
        error=ErrorPayload(code="EXECUTION_ERROR", message="boom", retryable=False, node="8 (VAEDecode)"),
    )
    encoded = status.encode()
    assert encoded == {
        "status": "FAILED",
        "attempt": 2,
        "error": {
            "code": "EXECUTION_ERROR",
            "message": "boom",
            "retryable": False,
            "node": "8 (VAEDecode)",
            "input": None,
        },
    }
    assert StatusPayload.decode(encoded) == status
    assert StatusPayload.decode({"status": "QUEUED"}) == StatusPayload(status=Status.QUEUED)
    with pytest.raises(ValueError, match="NOT_A_STATUS"):
        StatusPayload.decode({"status": "NOT_A_STATUS"})


def test_image_payloads_of_every_kind_and_from_before_outputs_had_kinds() -> None:
    sound = ImagePayload(
        index=1, content_hash="ab" * 32, width=None, height=None, seed=3, size_bytes=9, mime="audio/flac",
        kind="audio", batch_index=1, duration_s=2.5, filename="a.flac",
    )  # fmt: skip
    encoded = sound.encode()
    assert encoded["durationSeconds"] == 2.5 and "durationS" not in encoded
    assert (encoded["contentHash"], encoded["batchIndex"], encoded["sizeBytes"]) == ("ab" * 32, 1, 9)
    assert ImagePayload.decode(encoded) == sound
    old = {
        "index": 0,
        "contentHash": "cd" * 32,
        "width": 64,
        "height": 64,
        "seed": 7,
        "sizeBytes": 10,
        "mime": "image/png",
    }
    decoded = ImagePayload.decode(old)
    assert (decoded.kind, decoded.batch_index, decoded.duration_s, decoded.frames) == ("image", 0, None, None)
    assert set(sound.columns()) == {f.name for f in dataclasses.fields(ImagePayload)}, (
        "the images row's columns, by name"
    )


def test_preview_payload() -> None:
    preview = PreviewPayload(token="t0k", mime="image/jpeg")
    assert preview.encode() == {"token": "t0k", "mime": "image/jpeg"}
    assert PreviewPayload.decode(preview.encode()) == preview


@pytest.mark.parametrize(
    "error", [None, {"error_code": "OOM", "error_message": "out of memory", "error_retryable": True}]
)
async def test_the_status_payload_postgresql_builds_is_the_one_python_encodes(
    session: AsyncSession, error: dict[str, object] | None
) -> None:
    owner = await new_user(session)
    change, _ = await new_generation(session, owner)
    gid = change.generation.id
    await transition(session, generation_id=gid, to=Status.RUNNING, values={"lease": "job"})
    failed = await transition(session, generation_id=gid, to=Status.FAILED, lease="job", values=error)
    await session.commit()
    table = Generation.__table__
    built = (await session.execute(select(status_payload_sql(table)).where(table.c.id == gid))).scalar_one()
    row = (await session.execute(select(Generation).where(Generation.id == gid))).scalar_one()
    expected = StatusPayload.from_row(row)
    assert built == expected.encode()
    assert failed.event.payload == expected.encode(), "the STATUS event a transition writes"
    assert StatusPayload.decode(built) == expected
    assert (expected.error is None) == (error is None)
