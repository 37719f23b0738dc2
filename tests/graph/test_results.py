"""graph.results: expected job failures as the schema's typed results, with fields named as the schema names them."""

from __future__ import annotations

import pytest

from db.states import Status as DbStatus
from graph.results import (
    BackendUnavailableError,
    FieldError,
    InvalidStateError,
    NotAllowedError,
    NotFoundError,
    QuotaExceededError,
    ValidationError,
    api_field_name,
    from_job_error,
)
from graph.types import Status
from jobs import errors


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("prompt", "prompt"),
        ("negative_prompt", "negativePrompt"),
        ("batch_size", "batchSize"),
        ("loras[1].strength_model", "loras[1].strength_model"),  # inside the value: as the client sent it
        ("lora_2[0].name", "lora2[0].name"),
        ("workflow.7.class_type", "workflow.7.class_type"),
        ("", ""),
    ],
)
def test_only_the_parameter_name_becomes_camel_case(name: str, field: str) -> None:
    assert api_field_name(name) == field


def test_each_job_error_has_its_result() -> None:
    rejected = errors.Rejected([errors.FieldProblem("batch_size", "at most 8"), errors.FieldProblem("seed", "bad")])
    assert from_job_error(rejected) == ValidationError(
        message="invalid parameters",
        errors=[FieldError(field="batchSize", message="at most 8"), FieldError(field="seed", message="bad")],
    )
    assert from_job_error(errors.QuotaExceeded("20 active", limit=20)) == QuotaExceededError(
        message="20 active", limit=20
    )
    assert from_job_error(errors.BackendUnavailable("none")) == BackendUnavailableError(message="none")
    invalid = from_job_error(errors.InvalidState("already SUCCEEDED", status=DbStatus.SUCCEEDED))
    assert isinstance(invalid, InvalidStateError) and invalid.message == "already SUCCEEDED"
    assert invalid.status == Status.SUCCEEDED
    assert from_job_error(errors.NotFound("no such generation")) == NotFoundError(message="no such generation")
    assert from_job_error(errors.NotAllowed("admins only")) == NotAllowedError(message="admins only")


def test_an_unexpected_job_error_is_not_hidden_as_a_result() -> None:
    with pytest.raises(TypeError, match="unexpected job error"):
        from_job_error(errors.JobError("something new"))
