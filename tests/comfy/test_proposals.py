"""Parameters proposed for uploaded workflows: the shipped template's own, the UI saves' in
ui_workflows/, and the rules one by one (prompt sides, denoise, repeats, primitives, ranges)."""

from __future__ import annotations

import copy
import json
import time
import uuid
from typing import Any

import pytest

from comfy.catalog import Catalog
from comfy.proposals import propose_params
from comfy.templates import SHIPPED_DIR, ParamSpec, build_workflow, template_from_parts, validate_params
from comfy.ui_workflow import to_api_workflow

from .test_ui_workflow import SAVES, object_info, save


def api(name: str) -> dict[str, Any]:
    return to_api_workflow(save(name), object_info())


def by_name(params: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in params}


def test_the_shipped_txt2img_gets_its_own_parameters_back() -> None:
    workflow = json.loads((SHIPPED_DIR / "txt2img.json").read_text())
    shipped = by_name(json.loads((SHIPPED_DIR / "txt2img.params.json").read_text())["params"])
    proposed = by_name(propose_params(workflow, object_info()))
    assert set(proposed) == set(shipped) - {"loras"}
    for name, param in proposed.items():
        assert param["targets"] == shipped[name]["targets"], name
        assert param["type"] == shipped[name]["type"], name
    assert proposed["prompt"]["required"] is True and "default" not in proposed["prompt"]  # empty in the graph
    assert proposed["negative_prompt"]["default"] == "" and proposed["prompt"]["multiline"] is True
    assert "default" not in proposed["checkpoint"]  # 'model.safetensors' is not offered: the first one is
    assert "denoise" not in proposed  # 1.0 on an empty latent


@pytest.mark.parametrize("name", SAVES)
def test_proposals_make_a_template_whose_defaults_rebuild_the_workflow(name: str) -> None:
    workflow = api(name)
    params = propose_params(workflow, object_info())
    assert all(ParamSpec.parse(p).targets for p in params)
    template = template_from_parts(name=name, title=name, description="", workflow=workflow, params=params)
    required = {p.name: "a prompt" for p in template.params if p.required}
    inputs = {p.name: str(uuid.uuid4()) for p in template.params if p.type in ("image", "mask")}
    values = validate_params(template, {**required, **inputs}, catalog=Catalog.from_object_info(object_info()))
    built = build_workflow(template, values, filename_prefix=name)
    for param in params:
        if "default" in param:
            for node_id, input_name in param["targets"]:
                assert built[node_id]["inputs"][input_name] == workflow[node_id]["inputs"][input_name]
    targets = [tuple(t) for p in params for t in p["targets"]]
    assert len(targets) == len(set(targets))  # no input is written by two parameters


def test_img2img_image_and_denoise() -> None:
    proposed = by_name(propose_params(api("img2img_reroute_bypass"), object_info()))
    assert proposed["image"] == {
        "name": "image",
        "type": "image",
        "description": "The input image.",
        "targets": [["3", "image"]],
    }
    assert proposed["denoise"]["default"] == 0.55 and (proposed["denoise"]["min"], proposed["denoise"]["max"]) == (0, 1)
    assert proposed["checkpoint"]["default"] == "dreamshaper_8.safetensors"
    assert proposed["seed"]["targets"] == [["8", "seed"]] and "default" not in proposed["seed"]
    assert proposed["seed"]["max"] == 2**53 - 1  # the backend's 2^64-1 held to what JSON clients hold exactly


def test_prompts_are_found_through_conditioning_nodes() -> None:
    proposed = by_name(propose_params(api("controlnet_lora"), object_info()))
    # positive: CLIPTextEncode 3 and 4 → ConditioningCombine 5 → ControlNetApplyAdvanced 9 (output 0) → sampler
    assert (proposed["prompt"]["targets"], proposed["prompt_2"]["targets"]) == ([["3", "text"]], [["4", "text"]])
    # negative: CLIPTextEncode 6 → ControlNetApplyAdvanced 9's `negative` (output 1), not its positive side
    assert proposed["negative_prompt"]["targets"] == [["6", "text"]] and "negative_prompt_2" not in proposed
    assert proposed["seed"]["targets"] == [["12", "noise_seed"]]
    assert proposed["lora"] == {
        "name": "lora",
        "type": "enum",
        "description": "The LoRA.",
        "catalog": "loras",
        "default": "add_detail.safetensors",
        "targets": [["2", "lora_name"]],
    }
    assert proposed["lora_strength"]["targets"] == [["2", "strength_model"]]
    assert proposed["lora_clip_strength"]["default"] == 0.6
    assert (proposed["batch_size"]["default"], proposed["batch_size"]["max"]) == (2, 8)


def test_inpaint_and_upscale() -> None:
    inpaint = by_name(propose_params(api("inpaint_v1"), object_info()))
    assert inpaint["mask"]["type"] == "mask" and inpaint["mask"]["targets"] == [["3", "image"]]
    assert inpaint["denoise"]["default"] == 1.0  # shown: the latent is an encoded image
    upscale = by_name(propose_params(api("upscale"), object_info()))
    assert sorted(upscale) == ["image", "scale_by", "upscale_model"]  # no prompt at all
    assert upscale["upscale_model"]["choices"] == ["4x-UltraSharp.pth", "RealESRGAN_x2.pth"]
    assert (upscale["scale_by"]["min"], upscale["scale_by"]["max"], upscale["scale_by"]["default"]) == (0.01, 8.0, 0.5)
    no_models = copy.deepcopy(object_info())
    no_models["UpscaleModelLoader"]["input"]["required"]["model_name"][0] = []
    assert "upscale_model" not in by_name(propose_params(api("upscale"), no_models))


def test_repeated_kinds_get_numbered_names_and_shared_inputs_one_parameter() -> None:
    workflow = api("txt2img")
    second = copy.deepcopy(workflow["3"])
    second["inputs"].update(latent_image=["3", 0], denoise=0.4, seed=3, steps=200)
    workflow["20"] = second  # a second pass over the first's latent, same prompts
    proposed = by_name(propose_params(workflow, object_info()))
    assert proposed["seed_2"]["targets"] == [["20", "seed"]] and proposed["denoise"]["targets"] == [["20", "denoise"]]
    assert proposed["steps_2"]["default"] == 150  # held to the default step limit
    assert "prompt_2" not in proposed and "negative_prompt_2" not in proposed


def test_values_set_by_primitive_nodes_are_targeted_there() -> None:
    workflow = api("txt2img")
    workflow["30"] = {"class_type": "PrimitiveString", "inputs": {"value": "a lighthouse"}, "_meta": {"title": "p"}}
    workflow["6"]["inputs"]["text"] = ["30", 0]
    workflow["5"]["inputs"]["width"] = ["99", 0]  # from a node no parameter can write: left alone
    proposed = by_name(propose_params(workflow, object_info()))
    assert proposed["prompt"]["targets"] == [["30", "value"]] and proposed["prompt"]["default"] == "a lighthouse"
    assert "width" not in proposed


def test_encoders_no_sampler_reaches_go_by_title() -> None:
    workflow = {
        "1": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": "a fox", "clip": ["9", 1]},
            "_meta": {"title": "Prompt"},
        },
        "2": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": "ugly", "clip": ["9", 1]},
            "_meta": {"title": "Negative"},
        },
    }
    proposed = by_name(propose_params(workflow, object_info()))
    assert (proposed["prompt"]["default"], proposed["negative_prompt"]["default"]) == ("a fox", "ugly")


def test_out_of_range_values_are_clamped_and_links_are_not_proposed() -> None:
    workflow = api("txt2img")
    workflow["5"]["inputs"].update(width=13, height=20000, batch_size=50)
    workflow["3"]["inputs"]["cfg"] = ["40", 0]
    proposed = by_name(propose_params(workflow, object_info()))
    assert (proposed["width"]["default"], proposed["height"]["default"]) == (16, 16384)
    assert proposed["batch_size"]["default"] == 8 and "cfg" not in proposed


def test_an_unknown_workflow_gets_nothing() -> None:
    assert propose_params({"1": {"class_type": "Whatever", "inputs": {"x": 1}}}, object_info()) == []
    assert propose_params({}, {}) == []


def test_the_catalogue_keeps_the_raw_object_info_for_conversion_and_proposals() -> None:
    info = object_info()
    catalog = Catalog.from_object_info(info)
    assert catalog.object_info == info
    workflow = to_api_workflow(save("upscale"), catalog.object_info)
    assert [p["name"] for p in propose_params(workflow, catalog.object_info)] == ["image", "scale_by", "upscale_model"]


def test_custom_sampling_parts_as_flux_workflows_use_them() -> None:
    info = {
        "RandomNoise": {"input": {"required": {"noise_seed": ["INT", {"min": 0, "max": 2**64 - 1}]}}},
        "BasicScheduler": {
            "input": {
                "required": {
                    "model": ["MODEL"],
                    "scheduler": [["simple", "normal"]],
                    "steps": ["INT", {"default": 20, "min": 1, "max": 10000}],
                    "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0}],
                }
            }
        },
        "KSamplerSelect": {"input": {"required": {"sampler_name": [["euler", "heun"]]}}},
        "FluxGuidance": {
            "input": {
                "required": {"conditioning": ["CONDITIONING"], "guidance": ["FLOAT", {"min": 0.0, "max": 100.0}]}
            },
            "output": ["CONDITIONING"],
        },
        "BasicGuider": {
            "input": {"required": {"model": ["MODEL"], "conditioning": ["CONDITIONING"]}},
            "output": ["GUIDER"],
        },
        "CLIPTextEncode": object_info()["CLIPTextEncode"],
    }
    workflow = {
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat in a hat", "clip": ["11", 0]}},
        "26": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["6", 0], "guidance": 3.5}},
        "22": {"class_type": "BasicGuider", "inputs": {"model": ["12", 0], "conditioning": ["26", 0]}},
        "25": {"class_type": "RandomNoise", "inputs": {"noise_seed": 219}},
        "16": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "17": {
            "class_type": "BasicScheduler",
            "inputs": {"scheduler": "simple", "steps": 4, "denoise": 1.0, "model": ["12", 0]},
        },
    }
    proposed = by_name(propose_params(workflow, info))
    assert list(proposed) == ["prompt", "sampler", "steps", "scheduler", "seed", "guidance"]
    assert proposed["prompt"]["targets"] == [["6", "text"]] and proposed["guidance"]["default"] == 3.5
    assert proposed["seed"] == {
        "name": "seed",
        "type": "seed",
        "description": "Random seed; a random one is chosen (and reported) when absent.",
        "min": 0,
        "max": 2**53 - 1,
        "targets": [["25", "noise_seed"]],
    }
    assert (proposed["steps"]["default"], proposed["sampler"]["catalog"]) == (4, "samplers")


def test_tracing_conditioning_is_bounded() -> None:
    # 250 combine nodes of 200 inputs each, every one linked to others, read by 249 samplers
    workflow: dict[str, Any] = {
        str(i): {
            "class_type": "ConditioningCombine",
            "inputs": {f"c{k}": [str((i + k) % 250 + 1), 0] for k in range(200)},
        }
        for i in range(1, 251)
    }
    workflow["600"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "far away", "clip": ["0", 1]}}
    workflow["1"]["inputs"]["c0"] = ["600", 0]
    for i in range(251, 500):
        workflow[str(i)] = {"class_type": "KSampler", "inputs": {"positive": ["2", 0], "negative": ["3", 0]}}
    started = time.perf_counter()
    proposed = by_name(propose_params(workflow, object_info()))
    assert time.perf_counter() - started < 10.0  # well under 1 s here; without the bound, minutes
    assert list(proposed) == ["prompt"]  # the encoder no trace reached is still proposed, as a prompt
