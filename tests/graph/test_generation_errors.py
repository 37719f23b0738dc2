"""A generation ComfyUI refuses names the node, and the input where ComfyUI names one.

The workflows are put in the database as a raw generation directly (the API would refuse them now,
before queueing): what is tested is the worker's submit against the fake ComfyUI (upstream's 400
bodies by default), the stored error and its GraphQL shape.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from db.transitions import create_generation
from graph.state import AppState
from jobs.enqueue import enqueue_generation
from settings import Settings
from tests.graph.schema_level import SchemaClient, schema_state
from tests.stack import running_worker

QUERY = "query($id: ID!) { generation(id: $id) { status error { code node input message } } }"
BLUR: dict[str, Any] = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 3368652}},
    "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 3, "sigma": 1.0}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
}


@pytest.fixture
async def state(stack_settings: Settings) -> AsyncIterator[AppState]:
    # ImageSharpen (a real ComfyUI class) is in the allowlist, but the fake has no such class.
    classes = ("EmptyImage", "ImageBlur", "SaveImage", "ImageSharpen")
    async with schema_state(stack_settings, raw_node_classes=classes) as s, running_worker(s.settings):
        yield s


async def _run(state: AppState, workflow: dict[str, Any]) -> dict[str, Any]:
    client = await SchemaClient.create(state, admin=True)
    async with state.sessions() as session:
        change, _ = await create_generation(
            session, owner_id=client.user.id, template="raw", params={"workflow": workflow}, prompt="", seed=0,
            namespace=state.settings.namespace,
        )  # fmt: skip
        await session.commit()
    gid = change.generation.id
    await enqueue_generation(state.redis, state.keys, generation_id=gid, attempt=1)
    for _ in range(400):
        generation: dict[str, Any] = (await client.query(QUERY, {"id": str(gid)}))["generation"]
        if generation["status"] in ("FAILED", "SUCCEEDED"):
            return generation
        await asyncio.sleep(0.05)
    raise AssertionError(f"generation did not finish: {generation}")


async def test_a_missing_input_names_node_and_input(state: AppState) -> None:
    workflow = copy.deepcopy(BLUR)
    del workflow["1"]["inputs"]["width"]
    generation = await _run(state, workflow)
    assert generation["status"] == "FAILED"
    error = generation["error"]
    assert (error["code"], error["node"], error["input"]) == ("COMFY_VALIDATION", "1 (EmptyImage)", "width")


async def test_an_unknown_class_names_the_node(state: AppState) -> None:
    workflow = copy.deepcopy(BLUR)
    workflow["2"]["class_type"] = "ImageSharpen"
    generation = await _run(state, workflow)
    assert generation["status"] == "FAILED"
    error = generation["error"]
    assert (error["code"], error["node"], error["input"]) == ("COMFY_VALIDATION", "2 (ImageSharpen)", None)
