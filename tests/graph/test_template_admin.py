"""Workflows become templates at run time (issue 16): proposeTemplate / saveTemplate, versions that
leave old generations alone, a save seen by another API process at once, and a run on the fake."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from comfy.templates import SHIPPED_DIR
from db.models import Generation as GenerationRow
from graph.state import AppState
from settings import Settings
from tests.graph.schema_level import SchemaClient, schema_state
from tests.stack import running_worker

UI_WORKFLOWS = Path(__file__).resolve().parents[1] / "comfy" / "ui_workflows"

PROPOSE = """mutation($workflow: JSON!) { proposeTemplate(workflow: $workflow) {
  __typename
  ... on TemplateProposal { format workflow params problems { field message } }
  ... on ValidationError { message errors { field message } }
  ... on NotAllowedError { message }
} }"""
SAVE = """mutation($input: TemplateInput!) { saveTemplate(input: $input) {
  __typename
  ... on TemplatePayload { created template { name title version source updatedAt
        params { name type required multiline default } } }
  ... on ValidationError { message errors { field message } }
  ... on NotAllowedError { message }
  ... on TemplateNameTakenError { message name }
} }"""
TEMPLATES = "{ templates { name version source title params { name type } } }"
CREATE = """mutation($input: GenerationInput!) { createGeneration(input: $input) {
  __typename
  ... on GenerationPayload { generation { id template templateVersion parameters } }
  ... on ValidationError { errors { field message } }
} }"""
GENERATION = """query($id: ID!) { generation(id: $id) {
  status template templateVersion parameters error { code message } images { width height } } }"""


def _txt2img() -> dict[str, Any]:
    workflow: dict[str, Any] = json.loads((SHIPPED_DIR / "txt2img.json").read_text(encoding="utf-8"))
    return workflow


def _small(width: int) -> dict[str, Any]:
    """txt2img at a fixed size and two steps: what a version runs shows in its images' width."""
    workflow = _txt2img()
    workflow["4"]["inputs"]["ckpt_name"] = "dreamshaper_8.safetensors"
    workflow["5"]["inputs"].update(width=width, height=64)
    workflow["3"]["inputs"]["steps"] = 2
    return workflow


SMALL_PARAMS = [
    {"name": "prompt", "type": "string", "required": True, "multiline": True, "targets": [["6", "text"]]},
    {"name": "seed", "type": "seed", "targets": [["3", "seed"]]},
]


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def _finished(client: SchemaClient, gid: str) -> dict[str, Any]:
    generation: dict[str, Any] = {}
    for _ in range(600):
        generation = (await client.query(GENERATION, {"id": gid}))["generation"]
        if generation["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return generation
        await asyncio.sleep(0.05)
    raise AssertionError(f"generation {gid} did not finish: {generation}")


async def test_an_api_format_workflow_becomes_a_template(stack_settings: Settings) -> None:
    async with schema_state(stack_settings) as state:
        admin = await SchemaClient.create(state, admin=True)
        proposal = (await admin.query(PROPOSE, {"workflow": _txt2img()}))["proposeTemplate"]
        assert proposal["__typename"] == "TemplateProposal", proposal
        assert proposal["format"] == "API"
        proposed = {p["name"]: p for p in proposal["params"]}
        assert {"prompt", "seed", "steps"} <= set(proposed)
        assert proposal["problems"] == []  # the checkpoint input is a parameter: not held to its file value

        name = _name()
        saved = (await admin.query(SAVE, {"input": {"name": name, "title": "Mine", "workflow": _txt2img()}}))[
            "saveTemplate"
        ]
        assert saved["__typename"] == "TemplatePayload", saved
        template = saved["template"]
        assert (template["name"], template["title"], template["version"], template["source"]) == (
            name, "Mine", 1, "UPLOADED",
        )  # fmt: skip
        assert template["updatedAt"] is not None
        assert {p["name"] for p in template["params"]} == {api_name(p) for p in proposed}

        listed = {t["name"]: t for t in (await admin.query(TEMPLATES))["templates"]}
        assert listed[name]["version"] == 1 and listed["txt2img"]["source"] == "SHIPPED"
        again = await admin.query(SAVE, {"input": {"name": name, "title": "Mine", "workflow": _txt2img()}})
        assert again["saveTemplate"]["created"] is False and again["saveTemplate"]["template"]["version"] == 1


def api_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


async def test_a_ui_format_workflow_becomes_a_template(stack_settings: Settings) -> None:
    doc = json.loads((UI_WORKFLOWS / "txt2img.ui.json").read_text(encoding="utf-8"))
    async with schema_state(stack_settings) as state:
        admin = await SchemaClient.create(state, admin=True)
        proposal = (await admin.query(PROPOSE, {"workflow": doc}))["proposeTemplate"]
        assert proposal["__typename"] == "TemplateProposal", proposal
        assert proposal["format"] == "UI"
        classes = sorted(node["class_type"] for node in proposal["workflow"].values())
        assert "KSampler" in classes and "SaveImage" in classes and "Note" not in classes
        assert any(p["name"] == "prompt" for p in proposal["params"])

        name = _name()
        saved = (await admin.query(SAVE, {"input": {"name": name, "workflow": doc}}))["saveTemplate"]
        assert saved["__typename"] == "TemplatePayload", saved
        assert saved["template"]["version"] == 1 and saved["template"]["title"] == name
        async with running_worker(state.settings):
            created = (await admin.query(CREATE, {"input": {"template": name, "prompt": "a red fox", "extra": {}}}))[
                "createGeneration"
            ]
            assert created["__typename"] == "GenerationPayload", created
            finished = await _finished(admin, created["generation"]["id"])
        assert finished["status"] == "SUCCEEDED", finished


async def test_only_admins_add_templates(stack_settings: Settings) -> None:
    async with schema_state(stack_settings) as state:
        user = await SchemaClient.create(state)
        refused = (await user.query(PROPOSE, {"workflow": _txt2img()}))["proposeTemplate"]
        assert refused["__typename"] == "NotAllowedError"
        name = _name()
        refused = (await user.query(SAVE, {"input": {"name": name, "workflow": _txt2img()}}))["saveTemplate"]
        assert refused["__typename"] == "NotAllowedError"
        assert name not in {t["name"] for t in (await user.query(TEMPLATES))["templates"]}


async def test_an_invalid_workflow_gets_field_errors(stack_settings: Settings) -> None:
    async with schema_state(stack_settings) as state:
        admin = await SchemaClient.create(state, admin=True)
        broken = _txt2img()
        broken["10"] = {"class_type": "NoSuchNode", "inputs": {}}
        broken["5"]["inputs"]["batch_size"] = 100_000  # above EmptyLatentImage's max; no parameter sets it here
        params = [{"name": "prompt", "type": "string", "targets": [["6", "text"]]}]
        name = _name()
        result = (await admin.query(SAVE, {"input": {"name": name, "workflow": broken, "params": params}}))[
            "saveTemplate"
        ]
        assert result["__typename"] == "ValidationError", result
        fields = {e["field"] for e in result["errors"]}
        assert {"workflow.10.class_type", "workflow.5.inputs.batch_size", "workflow.4.inputs.ckpt_name"} <= fields

        proposal = (await admin.query(PROPOSE, {"workflow": broken}))["proposeTemplate"]
        assert proposal["__typename"] == "TemplateProposal"
        assert "workflow.10.class_type" in {p["field"] for p in proposal["problems"]}

        for workflow, field in (([1, 2], "workflow"), ({"1": {"inputs": {}}}, "workflow.1.class_type")):
            bad = (await admin.query(PROPOSE, {"workflow": workflow}))["proposeTemplate"]
            assert bad["__typename"] == "ValidationError" and bad["errors"][0]["field"] == field, bad

        bad_params = [{"name": "prompt", "type": "string", "targets": [["99", "text"]]}]
        result = await admin.query(SAVE, {"input": {"name": name, "workflow": _txt2img(), "params": bad_params}})
        assert result["saveTemplate"]["errors"][0]["field"] == "params"
        assert "node '99'" in result["saveTemplate"]["errors"][0]["message"]
        bad_name = (await admin.query(SAVE, {"input": {"name": "a b/c", "workflow": _txt2img()}}))["saveTemplate"]
        assert bad_name["errors"][0]["field"] == "name"

        taken = (await admin.query(SAVE, {"input": {"name": "txt2img", "workflow": _txt2img()}}))["saveTemplate"]
        assert taken["__typename"] == "TemplateNameTakenError" and taken["name"] == "txt2img"
        assert name not in {t["name"] for t in (await admin.query(TEMPLATES))["templates"]}


async def test_a_new_version_leaves_old_generations_as_they_were(stack_settings: Settings) -> None:
    async with schema_state(stack_settings) as state:
        admin = await SchemaClient.create(state, admin=True)
        name = _name()
        first = {"name": name, "title": "v1", "workflow": _small(64), "params": SMALL_PARAMS}
        saved = (await admin.query(SAVE, {"input": first}))["saveTemplate"]
        assert saved["template"]["version"] == 1
        assert saved["template"]["params"][0] == {
            "name": "prompt", "type": "STRING", "required": True, "multiline": True, "default": None,
        }  # fmt: skip
        old = (await admin.query(CREATE, {"input": {"template": name, "prompt": "old", "extra": {"seed": 1}}}))[
            "createGeneration"
        ]
        assert old["__typename"] == "GenerationPayload", old
        assert old["generation"]["templateVersion"] == 1

        # Version 2 renders wider and takes no seed; the queued old generation keeps version 1.
        second_params = [SMALL_PARAMS[0]]
        second = {"name": name, "title": "v2", "workflow": _small(96), "params": second_params}
        saved = (await admin.query(SAVE, {"input": second}))["saveTemplate"]
        assert saved["template"]["version"] == 2 and saved["template"]["title"] == "v2"
        new = (await admin.query(CREATE, {"input": {"template": name, "prompt": "new"}}))["createGeneration"]
        assert new["__typename"] == "GenerationPayload", new
        assert new["generation"]["templateVersion"] == 2

        async with running_worker(state.settings):
            old_done = await _finished(admin, old["generation"]["id"])
            new_done = await _finished(admin, new["generation"]["id"])
        assert old_done["status"] == new_done["status"] == "SUCCEEDED", (old_done, new_done)
        assert old_done["templateVersion"] == 1 and old_done["parameters"] == {"prompt": "old", "seed": 1}
        assert old_done["images"] == [{"width": 64, "height": 64}]  # built from version 1
        assert new_done["templateVersion"] == 2 and new_done["images"] == [{"width": 96, "height": 64}]
        async with state.sessions() as session:
            rows = (
                await session.execute(
                    select(GenerationRow.template_version_id).where(
                        GenerationRow.id.in_([uuid.UUID(old["generation"]["id"]), uuid.UUID(new["generation"]["id"])])
                    )
                )
            ).scalars()
            assert len(set(rows)) == 2


async def test_a_save_is_seen_by_another_api_process_without_restart(stack_settings: Settings) -> None:
    namespace = f"sltest-{uuid.uuid4().hex[:8]}"
    state_a: AppState
    state_b: AppState
    async with (
        schema_state(stack_settings, namespace=namespace) as state_a,
        schema_state(stack_settings, namespace=namespace) as state_b,
    ):
        admin_a = await SchemaClient.create(state_a, admin=True)
        user_b = await SchemaClient.create(state_b)
        name = _name()
        assert name not in {t["name"] for t in (await user_b.query(TEMPLATES))["templates"]}  # B's cache loaded
        workflow = copy.deepcopy(_small(64))
        saved = await admin_a.query(SAVE, {"input": {"name": name, "workflow": workflow, "params": SMALL_PARAMS}})
        assert saved["saveTemplate"]["__typename"] == "TemplatePayload"
        listed = {t["name"]: t for t in (await user_b.query(TEMPLATES))["templates"]}
        assert listed[name]["version"] == 1 and listed[name]["source"] == "UPLOADED"
        created = (await user_b.query(CREATE, {"input": {"template": name, "prompt": "seen"}}))["createGeneration"]
        assert created["__typename"] == "GenerationPayload", created
        assert created["generation"]["templateVersion"] == 1
