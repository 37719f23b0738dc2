"""Raw ComfyUI workflows: admins only, held to the node-class allowlist, run like any generation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.stack import GraphQLClient

MakeClient = Callable[..., Awaitable[GraphQLClient]]

RAW = """mutation($workflow: JSON!) { createWorkflowGeneration(workflow: $workflow) {
  __typename
  ... on GenerationPayload { generation { id template status } }
  ... on ValidationError { errors { field message } }
  ... on NotAllowedError { message }
} }"""

BLUR: dict[str, Any] = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 3368652}},
    "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 3, "sigma": 1.0}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "anything"}},
}


@pytest.mark.usefixtures("worker")
async def test_admin_runs_a_raw_workflow(make_client: MakeClient) -> None:
    admin = await make_client(admin=True)
    result = (await admin.query(RAW, {"workflow": BLUR}))["createWorkflowGeneration"]
    assert result["__typename"] == "GenerationPayload"
    assert result["generation"]["template"] == "raw"
    gid = result["generation"]["id"]
    query = "query($id: ID!) { generation(id: $id) { status images { width height } } }"
    for _ in range(200):
        generation = (await admin.query(query, {"id": gid}))["generation"]
        if generation["status"] in ("SUCCEEDED", "FAILED"):
            break
        await asyncio.sleep(0.05)
    assert generation == {"status": "SUCCEEDED", "images": [{"width": 64, "height": 64}]}


async def test_raw_workflows_are_for_admins_and_the_allowlist(make_client: MakeClient) -> None:
    user, admin = await make_client(), await make_client(admin=True)
    refused = (await user.query(RAW, {"workflow": BLUR}))["createWorkflowGeneration"]
    assert refused["__typename"] == "NotAllowedError"
    sneaky = {**BLUR, "2": {"class_type": "ExecutePythonCode", "inputs": {"code": "import os"}}}
    result = (await admin.query(RAW, {"workflow": sneaky}))["createWorkflowGeneration"]
    assert result["__typename"] == "ValidationError"
    assert result["errors"] == [
        {"field": "workflow.2.class_type", "message": "node class 'ExecutePythonCode' is not allowed"}
    ]
    empty = (await admin.query(RAW, {"workflow": {}}))["createWorkflowGeneration"]
    assert empty["errors"][0]["field"] == "workflow"
