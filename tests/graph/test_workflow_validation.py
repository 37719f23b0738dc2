"""Workflows are checked against the backends' live /object_info before anything is queued.

Schema level, against the fake ComfyUI's /object_info (the catalogue the API caches): an admin's raw
workflow with each kind of problem gets a ValidationError naming node and input
(`workflow.1.inputs.width`); an operator template that does not fit the backends is refused the
same way; a parameter that a node would refuse is named by the parameter.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from db.models import Generation
from graph.state import AppState
from settings import Settings
from tests.graph.schema_level import SchemaClient, schema_state

RAW = """mutation($workflow: JSON!) { createWorkflowGeneration(workflow: $workflow) {
  __typename
  ... on GenerationPayload { generation { id template } }
  ... on ValidationError { errors { field message } }
} }"""
CREATE = """mutation($input: GenerationInput!) { createGeneration(input: $input) {
  __typename
  ... on GenerationPayload { generation { id template prompt parameters } }
  ... on ValidationError { errors { field message } }
} }"""

BLUR: dict[str, Any] = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 3368652}},
    "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 3, "sigma": 1.0}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
}


def _with(node: str, **inputs: Any) -> dict[str, Any]:
    changed = copy.deepcopy(BLUR)
    for name, value in inputs.items():
        if value is None:
            del changed[node]["inputs"][name]
        else:
            changed[node]["inputs"][name] = value
    return changed


@pytest.fixture
async def state(stack_settings: Settings) -> AsyncIterator[AppState]:
    async with schema_state(stack_settings) as state:
        yield state


@pytest.mark.parametrize(
    ("workflow", "field"),
    [
        ({**BLUR, "2": {"class_type": "NoSuchNodeXYZ", "inputs": {}}}, "workflow.2.class_type"),
        (_with("1", width=None), "workflow.1.inputs.width"),
        (_with("2", radius=3), "workflow.2.inputs.radius"),
        (_with("1", width="abc"), "workflow.1.inputs.width"),
        (_with("1", width=["3", 0]), "workflow.1.inputs.width"),
        (_with("3", images=["99", 0]), "workflow.3.inputs.images"),
        (_with("1", width=0), "workflow.1.inputs.width"),
        (_with("2", blur_radius=99), "workflow.2.inputs.blur_radius"),
        ({"1": BLUR["1"], "2": BLUR["2"]}, "workflow"),
    ],
    ids=[
        "unknown-class", "missing-required", "undeclared-input", "literal-of-wrong-kind", "link-of-wrong-type",
        "link-to-nothing", "below-min", "above-max", "no-output",
    ],
)  # fmt: skip
async def test_each_invalid_raw_workflow_is_refused_with_its_field(
    state: AppState, workflow: dict[str, Any], field: str
) -> None:
    admin = await SchemaClient.create(state, admin=True)
    result = (await admin.query(RAW, {"workflow": workflow}))["createWorkflowGeneration"]
    assert result["__typename"] == "ValidationError", result
    assert field in [e["field"] for e in result["errors"]], result["errors"]
    async with state.sessions() as session:
        count = select(func.count()).where(Generation.owner_id == admin.user.id)
        assert (await session.execute(count)).scalar_one() == 0, "nothing may be queued"


async def test_a_choice_not_offered_is_refused(state: AppState) -> None:
    admin = await SchemaClient.create(state, admin=True)
    workflow = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "missing.safetensors"}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["4", 2]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["8", 0]}},
    }
    result = (await admin.query(RAW, {"workflow": workflow}))["createWorkflowGeneration"]
    assert result["__typename"] == "ValidationError", result
    errors = {e["field"]: e["message"] for e in result["errors"]}
    assert "dreamshaper_8.safetensors" in errors["workflow.4.inputs.ckpt_name"]


async def test_a_valid_raw_workflow_is_queued(state: AppState) -> None:
    admin = await SchemaClient.create(state, admin=True)
    result = (await admin.query(RAW, {"workflow": BLUR}))["createWorkflowGeneration"]
    assert result["__typename"] == "GenerationPayload", result


def _write_template(directory: Path, name: str, workflow: dict[str, Any], params: list[dict[str, Any]]) -> None:
    (directory / f"{name}.json").write_text(json.dumps(workflow), encoding="utf-8")
    declaration = {"title": name, "description": "", "params": params}
    (directory / f"{name}.params.json").write_text(json.dumps(declaration), encoding="utf-8")


async def test_operator_templates_that_do_not_fit_the_backends_are_refused(
    stack_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    radius = {"name": "radius", "type": "int", "default": 3, "min": 1, "max": 100, "targets": [["2", "blur_radius"]]}
    _write_template(tmp_path, "blur", BLUR, [radius])
    broken = copy.deepcopy(BLUR)
    broken["2"]["inputs"]["sigma"] = "soft"
    _write_template(tmp_path, "broken", broken, [])
    async with schema_state(stack_settings, template_dirs=(tmp_path,)) as state:
        user = await SchemaClient.create(state)
        fine = (await user.query(CREATE, {"input": {"template": "blur", "extra": {"radius": 31}}}))["createGeneration"]
        assert fine["__typename"] == "GenerationPayload", fine
        # Within the template's own range, beyond what the node takes: named by the parameter.
        over = (await user.query(CREATE, {"input": {"template": "blur", "extra": {"radius": 50}}}))["createGeneration"]
        assert over["__typename"] == "ValidationError"
        assert [e["field"] for e in over["errors"]] == ["radius"]
        assert "maximum of 31" in over["errors"][0]["message"]
        result = (await user.query(CREATE, {"input": {"template": "broken"}}))["createGeneration"]
        assert result["__typename"] == "ValidationError"
        assert [e["field"] for e in result["errors"]] == ["workflow.2.inputs.sigma"]
        assert "template 'broken'" in result["errors"][0]["message"]
    # The operator hears of it in the log, once per change of what the backends offer.
    warnings = [r.getMessage() for r in caplog.records if r.name == "jobs.service.generations"]
    assert warnings == [
        "template 'broken' does not fit the backends: workflow.2.inputs.sigma: must be a number, not 'soft'"
    ]


async def test_an_over_long_idempotency_key_is_a_field_error(state: AppState) -> None:
    admin = await SchemaClient.create(state, admin=True)
    document = RAW.replace("($workflow: JSON!)", "($workflow: JSON!, $key: String)").replace(
        "(workflow: $workflow)", "(workflow: $workflow, idempotencyKey: $key)"
    )
    result = (await admin.query(document, {"workflow": BLUR, "key": "k" * 201}))["createWorkflowGeneration"]
    assert result == {
        "__typename": "ValidationError",
        "errors": [{"field": "idempotencyKey", "message": "must be 1 to 200 characters"}],
    }
