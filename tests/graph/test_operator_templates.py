"""Operator templates need not declare `prompt`: a blur of a generated image is a valid template and runs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from comfy.templates import load_templates
from graph.state import AppState
from settings import Settings
from tests.graph.schema_level import SchemaClient, schema_state
from tests.stack import running_worker

CREATE = """mutation($input: GenerationInput!) { createGeneration(input: $input) {
  __typename
  ... on GenerationPayload { generation { id template prompt parameters } }
  ... on ValidationError { errors { field message } }
} }"""
STATUS = "query($id: ID!) { generation(id: $id) { status error { code message } images { width height } } }"

BLUR: dict[str, Any] = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 3368652}},
    "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 3, "sigma": 1.0}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
}
PARAMS = {
    "title": "Blur",
    "description": "A blurred plain image: no prompt, no seed.",
    "params": [
        {"name": "size", "type": "int", "default": 64, "min": 16, "max": 256,
         "targets": [["1", "width"], ["1", "height"]]},
        {"name": "radius", "type": "int", "default": 3, "min": 1, "max": 31, "targets": [["2", "blur_radius"]]},
    ],
}  # fmt: skip


def _template_dir(root: Path) -> Path:
    (root / "blur.json").write_text(json.dumps(BLUR), encoding="utf-8")
    (root / "blur.params.json").write_text(json.dumps(PARAMS), encoding="utf-8")
    return root


async def _finished(client: SchemaClient, gid: str) -> dict[str, Any]:
    for _ in range(600):
        generation: dict[str, Any] = (await client.query(STATUS, {"id": gid}))["generation"]
        if generation["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return generation
        await asyncio.sleep(0.05)
    raise AssertionError(f"generation {gid} did not finish: {generation}")


def test_a_template_without_prompt_loads(tmp_path: Path) -> None:
    template = load_templates([_template_dir(tmp_path)])["blur"]
    assert [p.name for p in template.params] == ["size", "radius"]


async def test_a_template_without_prompt_is_requested_and_runs(stack_settings: Settings, tmp_path: Path) -> None:
    directory = _template_dir(tmp_path)
    state: AppState
    async with schema_state(stack_settings, template_dirs=(directory,)) as state:
        client = await SchemaClient.create(state)
        async with running_worker(state.settings):
            result = (await client.query(CREATE, {"input": {"template": "blur", "extra": {"radius": 5, "size": 32}}}))[
                "createGeneration"
            ]
            assert result["__typename"] == "GenerationPayload", result
            assert result["generation"]["prompt"] == ""
            assert result["generation"]["parameters"] == {"size": 32, "radius": 5}
            finished = await _finished(client, result["generation"]["id"])
    assert finished == {"status": "SUCCEEDED", "error": None, "images": [{"width": 32, "height": 32}]}


async def test_prompt_is_still_required_where_declared_and_unknown_where_not(
    stack_settings: Settings, tmp_path: Path
) -> None:
    async with schema_state(stack_settings, template_dirs=(_template_dir(tmp_path),)) as state:
        client = await SchemaClient.create(state)
        missing = (await client.query(CREATE, {"input": {"template": "txt2img"}}))["createGeneration"]
        assert missing["__typename"] == "ValidationError"
        assert {"field": "prompt", "message": "is required"} in missing["errors"]
        stray = (await client.query(CREATE, {"input": {"template": "blur", "prompt": "a"}}))["createGeneration"]
        assert stray["__typename"] == "ValidationError"
        assert stray["errors"] == [{"field": "prompt", "message": "unknown parameter"}]
