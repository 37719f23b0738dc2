"""comfy.template_upload: an uploaded workflow read (API or UI format), proposed and checked, purely."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from comfy.fake.catalog import object_info
from comfy.template_upload import MAX_WORKFLOW_NODES, propose_template, read_workflow, template_from_upload
from comfy.templates import SHIPPED_DIR, ParamValidationError

UI_WORKFLOWS = Path(__file__).resolve().parent / "ui_workflows"


def _txt2img() -> dict[str, Any]:
    workflow: dict[str, Any] = json.loads((SHIPPED_DIR / "txt2img.json").read_text(encoding="utf-8"))
    return workflow


def _fields(doc: Any, info: dict[str, Any] | None = None, **kwargs: Any) -> list[str]:
    def attempt() -> object:
        return template_from_upload(doc=doc, object_info=info, **kwargs) if kwargs else read_workflow(doc, info)

    with pytest.raises(ParamValidationError) as caught:
        attempt()
    return [e.field for e in caught.value.errors]


def test_api_format_proposed_and_checked() -> None:
    proposal = propose_template(_txt2img(), object_info())
    assert proposal.format == "api" and proposal.problems == []
    names = {p["name"] for p in proposal.params}
    assert {"prompt", "seed", "steps", "checkpoint"} <= names
    template, source_format = template_from_upload(
        name="mine", title=None, description=None, doc=_txt2img(), params=None, object_info=object_info()
    )
    assert source_format == "api" and template.title == "mine"
    assert {p.name for p in template.params} == names


def test_ui_format_converted_with_the_catalogue() -> None:
    doc = json.loads((UI_WORKFLOWS / "txt2img.ui.json").read_text(encoding="utf-8"))
    proposal = propose_template(doc, object_info())
    assert proposal.format == "ui"
    assert "KSampler" in {n["class_type"] for n in proposal.workflow.values()}
    assert _fields(doc, None) == ["workflow"]  # no catalogue, no conversion


def test_shapes_refused_with_their_fields() -> None:
    assert _fields([], None) == ["workflow"]
    assert _fields({}, None) == ["workflow"]
    assert _fields({"1": {"inputs": {}}, "2": {"class_type": "X", "inputs": 3}}, None) == [
        "workflow.1.class_type",
        "workflow.2.inputs",
    ]
    too_many = {str(i): {"class_type": "X", "inputs": {}} for i in range(MAX_WORKFLOW_NODES + 1)}
    assert _fields(too_many, None) == ["workflow"]


def test_upload_checks_name_title_params_and_the_catalogue() -> None:
    common: dict[str, Any] = {"title": None, "description": None, "params": None}
    assert _fields(_txt2img(), object_info(), name="raw", **common) == ["name"]
    assert _fields(_txt2img(), object_info(), name="a/b", **common) == ["name"]
    assert _fields(_txt2img(), object_info(), name="ok", title="x" * 201, description=None, params=None) == ["title"]
    assert _fields(_txt2img(), object_info(), name="ok", title=None, description=None, params={"a": 1}) == ["params"]
    bad_target = [{"name": "p", "type": "string", "targets": [["9", "text"]]}]
    assert _fields(_txt2img(), object_info(), name="ok", title=None, description=None, params=bad_target) == ["params"]
    # Without a parameter on the checkpoint input, the file the workflow names must be offered.
    fields = _fields(_txt2img(), object_info(), name="ok", title=None, description=None, params=[])
    assert "workflow.4.inputs.ckpt_name" in fields
    # Without a catalogue, only the shape and the parameters are checked.
    template, _ = template_from_upload(
        name="ok", title=None, description=None, doc=_txt2img(), params=[], object_info=None
    )
    assert template.params == ()
