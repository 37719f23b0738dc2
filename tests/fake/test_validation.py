"""Recordings 11 and 14: invalid submissions answer exactly what each ComfyUI build answered, plus the
txt2img checks (in the default, upstream dialect)."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from comfy.fake.config import Dialect
from tests.fake.recordings import BUILDS, load

INVALID = [
    pytest.param(dialect, recorded, id=f"{dialect}-{recording}-{index}")
    for dialect in BUILDS
    for recording in ("11", "14")
    if recording != "14" or dialect == "upstream"
    for index, recorded in enumerate(load(recording, dialect).http("POST", "/prompt"))
]


def txt2img(**overrides: Any) -> dict[str, Any]:
    prompt: dict[str, Any] = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dreamshaper_8.safetensors"}},
        "10": {
            "class_type": "LoraLoader",
            "inputs": {
                "model": ["4", 0],
                "clip": ["4", 1],
                "lora_name": "add_detail.safetensors",
                "strength_model": 0.8,
                "strength_clip": 0.8,
            },
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk", "clip": ["10", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["10", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["10", 0],
                "seed": 42,
                "steps": 4,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
                "denoise": 1.0,
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "txt2img"}},
    }
    for path, value in overrides.items():
        node_id, name = path.split("__")
        prompt[node_id]["inputs"][name] = value
    return copy.deepcopy(prompt)


@pytest.mark.parametrize(("dialect", "recorded"), INVALID)
async def test_recorded_rejections_are_identical(
    http: httpx.AsyncClient, dialect: Dialect, recorded: dict[str, Any]
) -> None:
    if "request_raw" in recorded:
        got = await http.post("/prompt", content=recorded["request_raw"])
    else:
        got = await http.post("/prompt", json=recorded["request_json"])
    assert got.status_code == recorded["status"]
    assert got.headers["content-type"] == recorded["content_type"]
    if "json" in recorded:
        assert got.json() == recorded["json"]
    else:
        assert got.text == recorded["text"]


async def _node_error(http: httpx.AsyncClient, prompt: dict[str, Any]) -> dict[str, Any]:
    got = await http.post("/prompt", json={"prompt": prompt})
    assert got.status_code == 400, got.text
    body: dict[str, Any] = got.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["error"]["extra_info"] == {}  # upstream; the packaging repeats node_errors there
    return body


async def test_valid_txt2img_is_accepted(http: httpx.AsyncClient) -> None:
    got = await http.post("/prompt", json={"prompt": txt2img(), "prompt_id": "mine"})
    assert got.status_code == 200
    assert got.json() == {"prompt_id": "mine", "number": 0, "node_errors": {}}


async def test_value_below_min(http: httpx.AsyncClient) -> None:
    body = await _node_error(http, txt2img(**{"5__width": 3}))
    (error,) = body["node_errors"]["5"]["errors"]
    assert error["type"] == "value_smaller_than_min"
    assert error["message"] == "Value 3 smaller than min of 16"
    assert error["details"] == "width"
    assert error["extra_info"]["received_value"] == 3
    assert body["node_errors"]["5"]["dependent_outputs"] == ["9"]
    assert body["node_errors"]["5"]["class_type"] == "EmptyLatentImage"


async def test_value_above_max(http: httpx.AsyncClient) -> None:
    body = await _node_error(http, txt2img(**{"3__denoise": 1.5}))
    (error,) = body["node_errors"]["3"]["errors"]
    assert (error["type"], error["message"]) == ("value_bigger_than_max", "Value 1.5 bigger than max of 1.0")


async def test_value_not_in_long_list(http: httpx.AsyncClient) -> None:
    body = await _node_error(http, txt2img(**{"3__sampler_name": "warp"}))
    (error,) = body["node_errors"]["3"]["errors"]
    assert error["type"] == "value_not_in_list"
    assert error["details"].startswith("sampler_name: 'warp' not in (list of length ")
    assert error["extra_info"]["input_config"] is None


async def test_value_not_in_short_list(http: httpx.AsyncClient) -> None:
    body = await _node_error(http, txt2img(**{"10__lora_name": "nope.safetensors"}))
    (error,) = body["node_errors"]["10"]["errors"]
    assert error["details"] == (
        "lora_name: 'nope.safetensors' not in ['add_detail.safetensors', 'film_grain.safetensors']"
    )
    assert error["extra_info"]["input_config"][0] == ["add_detail.safetensors", "film_grain.safetensors"]


async def test_missing_required_input_and_wrong_type(http: httpx.AsyncClient) -> None:
    prompt = txt2img(**{"3__cfg": "high"})
    del prompt["3"]["inputs"]["seed"]
    body = await _node_error(http, prompt)
    errors = {error["type"]: error for error in body["node_errors"]["3"]["errors"]}
    assert errors["required_input_missing"]["message"] == "Required input is missing"
    assert errors["required_input_missing"]["details"] == "seed"
    assert errors["invalid_input_type"]["details"] == "cfg, high, could not convert string to float: 'high'"
    assert body["error"]["details"] == ""  # only an output node's own errors are summarised here


async def test_wrong_link_type(http: httpx.AsyncClient) -> None:
    body = await _node_error(http, txt2img(**{"3__positive": ["5", 0]}))
    (error,) = body["node_errors"]["3"]["errors"]
    assert (error["type"], error["details"]) == (
        "return_type_mismatch",
        "positive, received_type(LATENT) mismatch input_type(CONDITIONING)",
    )


async def test_numeric_strings_are_converted_like_comfyui(http: httpx.AsyncClient) -> None:
    got = await http.post("/prompt", json={"prompt": txt2img(**{"3__steps": "2"}), "prompt_id": "p"})
    assert got.status_code == 200
    queued = (await http.get("/queue")).json()
    items = queued["queue_running"] + queued["queue_pending"]
    assert items[0][2]["3"]["inputs"]["steps"] == 2


async def test_every_submission_takes_a_number(http: httpx.AsyncClient) -> None:
    await http.post("/prompt", json={"prompt": {}})
    await http.post("/prompt", json={})
    got = await http.post("/prompt", json={"prompt": txt2img()})
    assert got.json()["number"] == 2
