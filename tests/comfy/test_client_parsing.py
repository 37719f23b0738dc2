"""Parsing of recorded HTTP answers: history and queue forms, 400 bodies, system stats, catalogue.

These feed recorded bodies through httpx's MockTransport; the client against a live
server is covered by test_integration.py.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from comfy.catalog import Catalog
from comfy.client import ComfyClient, HistoryEntry, HistoryMessage, QueueItem, QueueSnapshot, without_credentials
from comfy.errors import ComfyProtocolError, ComfyUnavailable, ComfyUnreachable, NodeError, PromptValidationError
from comfy.events import OutputImage

from .conftest import http_answers, load_recording


def _client(routes: dict[str, tuple[int, Any]]) -> ComfyClient:
    def handler(request: httpx.Request) -> httpx.Response:
        key = f"{request.method} {request.url.path}"
        status, body = routes[key]
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    return ComfyClient("http://comfy.test", transport=httpx.MockTransport(handler))


def _history_body(recording: str) -> tuple[str, Any]:
    answer = http_answers(load_recording(recording), "GET", "/history/")[0]
    (prompt_id,) = answer["json"]
    return prompt_id, answer["json"]


async def test_history_success_string_messages() -> None:
    prompt_id, body = _history_body("02_")
    async with _client({f"GET /history/{prompt_id}": (200, body)}) as client:
        entry = await client.history(prompt_id)
    assert entry is not None
    assert entry.succeeded and not entry.interrupted and entry.error is None
    assert entry.status_str == "success" and entry.completed
    assert entry.images == (OutputImage("rec_blur_00001_.png", "", "output"),)
    assert [m.event for m in entry.messages] == ["execution_start", "execution_cached", "execution_success"]


async def test_history_unknown_is_none() -> None:
    async with _client({"GET /history/does-not-exist": (200, {})}) as client:
        assert await client.history("does-not-exist") is None


def test_history_interrupted() -> None:
    prompt_id, body = _history_body("06_")
    entry = HistoryEntry.parse(prompt_id, body[prompt_id])
    assert entry.interrupted and not entry.succeeded
    assert entry.error is None
    assert entry.outputs == ()


def test_history_error_string_form() -> None:
    prompt_id, body = _history_body("10_")
    entry = HistoryEntry.parse(prompt_id, body[prompt_id])
    failed = entry.error
    assert failed is not None and not entry.succeeded and not entry.interrupted
    assert failed.exception_message == "boom from RaiseError"
    assert failed.node_id is None


def test_history_error_array_form() -> None:
    error = {
        "prompt_id": "p",
        "node_id": "2",
        "node_type": "RaiseError",
        "exception_message": "boom",
        "exception_type": "RuntimeError",
        "traceback": ["line"],
    }
    raw = {
        "outputs": {},
        "status": {
            "status_str": "error",
            "completed": False,
            "messages": [
                ["execution_start", {"prompt_id": "p", "timestamp": 1}],
                ["execution_cached", {"nodes": [], "prompt_id": "p", "timestamp": 1}],
                ["execution_error", error],
            ],
        },
    }
    entry = HistoryEntry.parse("p", raw)
    assert entry.messages[0] == HistoryMessage("execution_start", {"prompt_id": "p", "timestamp": 1})
    failed = entry.error
    assert failed is not None
    assert (failed.node_id, failed.node_type, failed.exception_type) == ("2", "RaiseError", "RuntimeError")
    assert failed.traceback == ("line",)


def test_history_without_status_block() -> None:
    raw = {"outputs": {"9": {"images": [{"filename": "a.png", "subfolder": "s", "type": "output"}]}}}
    entry = HistoryEntry.parse("p", raw)
    assert entry.succeeded and entry.error is None and entry.images == (OutputImage("a.png", "s", "output"),)
    assert not HistoryEntry.parse("p", {"outputs": {}}).succeeded


def test_history_interrupted_array_form() -> None:
    raw = {
        "outputs": {},
        "status": {
            "status_str": "error",
            "completed": False,
            "messages": [["execution_interrupted", {"prompt_id": "p", "node_id": "3", "executed": []}]],
        },
    }
    entry = HistoryEntry.parse("p", raw)
    assert entry.interrupted and entry.error is None


async def test_queue_object_form_and_position() -> None:
    answers = http_answers(load_recording("08_"), "GET", "/queue")
    body = next(a["json"] for a in answers if len(a["json"]["queue_pending"]) == 2)
    async with _client({"GET /queue": (200, body)}) as client:
        queue = await client.queue()
    assert queue.running == (
        QueueItem("8f329757-13c8-4a18-a8cd-4811b4811dd5", 8, "ff63c5ac-207c-4198-a6fe-915b18850844"),
    )
    assert [i.number for i in queue.pending] == [9, 10]
    assert queue.position("8f329757-13c8-4a18-a8cd-4811b4811dd5") == 0
    assert queue.position("40220ca1-5a55-4002-866e-835bd8f3d549") == 1
    assert queue.position("5d89edd4-9914-4da3-b173-f9fe8520b9f9") == 2
    assert queue.position("nope") is None
    assert "40220ca1-5a55-4002-866e-835bd8f3d549" in queue


async def test_queue_array_form_sorted_by_number() -> None:
    body = {
        "queue_running": [[3, "run", {}, {"client_id": "c"}, ["9"]]],
        "queue_pending": [[7, "later", {}, {}, ["9"]], [5, "sooner", {}, {"client_id": "c"}, ["9"]]],
    }
    async with _client({"GET /queue": (200, body)}) as client:
        queue = await client.queue()
    assert queue == QueueSnapshot(
        running=(QueueItem("run", 3, "c"),),
        pending=(QueueItem("sooner", 5, "c"), QueueItem("later", 7, None)),
    )
    assert queue.position("later") == 2


def test_queue_item_rejects_garbage() -> None:
    with pytest.raises(ComfyProtocolError):
        QueueItem.parse("x")
    with pytest.raises(ComfyProtocolError):
        QueueItem.parse({"priority": 1})


def _invalid_bodies() -> list[dict[str, Any]]:
    return [a["json"] for a in http_answers(load_recording("11_"), "POST", "/prompt") if a["status"] == 400]


def test_prompt_errors_from_recording() -> None:
    errors = [PromptValidationError.from_response(body) for body in _invalid_bodies()]
    assert [e.error_type for e in errors] == [
        "missing_node_type",
        "prompt_outputs_failed_validation",
        "prompt_outputs_failed_validation",
        "prompt_outputs_failed_validation",
        "prompt_outputs_failed_validation",
        "prompt_outputs_failed_validation",
        "prompt_no_outputs",
        "prompt_no_outputs",
        "no_prompt",
        "missing_node_type",
    ]
    missing, required, wrong_type, link, below_min, dangling, _, _, no_prompt, no_class = errors
    assert missing.node_errors == [
        NodeError(
            "2",
            "NoSuchNodeXYZ",
            None,
            "Node 'NoSuchNodeXYZ' not found. The custom node may not be installed. (Node ID '#2')",
        )
    ]
    assert required.node_errors == [NodeError("1", "EmptyImage", "width", "Required input is missing: width")]
    assert wrong_type.node_errors[0].input_name == "width"
    assert "abc" in wrong_type.node_errors[0].reason
    assert link.node_errors == [
        NodeError("2", "EmptyImage", "width", "Return type mismatch between linked nodes: width, IMAGE != INT")
    ]
    assert below_min.node_errors == [NodeError("1", "EmptyImage", "width", "Value 0 smaller than min of 1: width")]
    assert dangling.node_errors[0].node_id == "3" and dangling.node_errors[0].input_name is None
    assert no_prompt.node_errors == [] and no_prompt.message == "No prompt provided"
    assert no_class.node_errors[0].node_id == "1" and no_class.node_errors[0].class_type is None
    assert not missing.retryable
    assert "node 1 (EmptyImage) input width" in str(required)


async def test_submit_400_raises_validation_error() -> None:
    body = _invalid_bodies()[1]
    async with _client({"POST /prompt": (400, body)}) as client:
        with pytest.raises(PromptValidationError) as info:
            await client.submit({"1": {}}, prompt_id="p", client_id="c")
    assert info.value.node_errors[0].input_name == "width"


async def test_submit_500_and_connection_errors_are_transient() -> None:
    async with _client({"POST /prompt": (500, b"500 Internal Server Error\n\nServer got itself in trouble")}) as c:
        with pytest.raises(ComfyUnavailable) as info:
            await c.submit({}, prompt_id="p", client_id="c")
    assert info.value.retryable
    with pytest.raises(ComfyUnavailable) as answered:
        async with _client({"GET /queue": (503, b"")}) as c:
            await c.queue()
    assert not isinstance(answered.value, ComfyUnreachable), "it answered: an attempt's failure, not an outage"
    async with ComfyClient("http://127.0.0.1:9", timeout=2) as client:
        with pytest.raises(ComfyUnreachable) as info:
            await client.queue()
    assert info.value.sent is False, "no connection: the request cannot have arrived"


async def test_errors_name_the_backend_without_its_credentials() -> None:
    async with ComfyClient("http://admin:s3cret@127.0.0.1:9/comfy", timeout=2) as client:
        assert client.display_url == "http://127.0.0.1:9/comfy"
        with pytest.raises(ComfyUnreachable) as info:
            await client.submit({}, prompt_id="p", client_id="c")
    assert "s3cret" not in str(info.value) and "admin" not in str(info.value)
    assert "127.0.0.1:9/comfy/prompt" in str(info.value)
    assert without_credentials("https://u:p@[::1]:8188/x") == "https://[::1]:8188/x"
    assert without_credentials("http://host:8188") == "http://host:8188"


async def test_view_404_is_a_protocol_error() -> None:
    async with _client({"GET /view": (404, b"")}) as client:
        with pytest.raises(ComfyProtocolError):
            await client.view(OutputImage("nope.png", "", "output"))


async def test_system_stats() -> None:
    body = http_answers(load_recording("01_"), "GET", "/system_stats")[0]["json"]
    async with _client({"GET /system_stats": (200, body)}) as client:
        stats = await client.system_stats()
    assert stats.comfyui_version == "0.12.1"
    assert stats.devices[0].name == "cpu" and stats.devices[0].type == "cpu"
    assert stats.devices[0].vram_total == 25276502016 and stats.devices[0].index is None


def test_catalog_both_combo_forms() -> None:
    info = {
        "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["a.safetensors", "b.ckpt"], {}]}}},
        "LoraLoader": {"input": {"required": {"lora_name": ["COMBO", {"options": ["l1.safetensors"]}]}}},
        "KSampler": {
            "input": {"required": {"sampler_name": [["euler", "dpmpp_2m"]], "scheduler": [["normal", "karras"]]}}
        },
        "SaveImage": {"input": {"required": {}}},
    }
    catalog = Catalog.from_object_info(info)
    assert catalog.checkpoints == ("a.safetensors", "b.ckpt")
    assert catalog.loras == ("l1.safetensors",)
    assert catalog.samplers == ("euler", "dpmpp_2m")
    assert catalog.schedulers == ("normal", "karras")
    assert "SaveImage" in catalog.node_classes
    assert Catalog.from_object_info({}) == Catalog()
    assert json.dumps(catalog.choices("loras")) == '["l1.safetensors"]'
