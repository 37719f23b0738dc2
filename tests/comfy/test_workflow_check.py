"""comfy.workflow_check against the fake's /object_info (ComfyUI's own format) and hand-made declarations."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from comfy.catalog import Catalog, merge_object_info
from comfy.fake.catalog import object_info
from comfy.workflow_check import check_workflow

BLUR: dict[str, Any] = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 3368652}},
    "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 3, "sigma": 1.0}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
}
TXT2IMG: dict[str, Any] = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 1, "steps": 2, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0],
        },
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dreamshaper_8.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["8", 0]}},
}  # fmt: skip


def _with(workflow: dict[str, Any], node: str, **inputs: Any) -> dict[str, Any]:
    changed = copy.deepcopy(workflow)
    for name, value in inputs.items():
        if value is None:
            del changed[node]["inputs"][name]
        else:
            changed[node]["inputs"][name] = value
    return changed


def _fields(workflow: dict[str, Any], info: dict[str, Any] | None = None) -> dict[str, str]:
    return {p.field: p.message for p in check_workflow(workflow, object_info() if info is None else info)}


@pytest.mark.parametrize("workflow", [BLUR, TXT2IMG], ids=["blur", "txt2img"])
def test_valid_workflows_pass(workflow: dict[str, Any]) -> None:
    assert check_workflow(workflow, object_info()) == []


@pytest.mark.parametrize(
    ("workflow", "field", "words"),
    [
        ({**BLUR, "2": {"class_type": "NoSuchNodeXYZ", "inputs": {}}}, "workflow.2.class_type", "not offered"),
        ({**BLUR, "2": {"inputs": {}}}, "workflow.2.class_type", "required"),
        ({**BLUR, "2": {"class_type": "ImageBlur", "inputs": 3}}, "workflow.2.inputs", "object"),
        (_with(BLUR, "1", width=None), "workflow.1.inputs.width", "required by EmptyImage"),
        (_with(BLUR, "1", depth=3), "workflow.1.inputs.depth", "has no input 'depth'"),
        (_with(BLUR, "1", width="abc"), "workflow.1.inputs.width", "integer"),
        (_with(BLUR, "1", width=True), "workflow.1.inputs.width", "integer"),
        (_with(BLUR, "1", width=64.5), "workflow.1.inputs.width", "integer"),
        (_with(BLUR, "2", sigma="1.0"), "workflow.2.inputs.sigma", "number"),
        (_with(BLUR, "3", filename_prefix=7), "workflow.3.inputs.filename_prefix", "string"),
        (_with(BLUR, "2", image=64), "workflow.2.inputs.image", "link to a IMAGE output"),
        (_with(BLUR, "1", width=0), "workflow.1.inputs.width", "below the minimum of 1"),
        (_with(BLUR, "2", blur_radius=32), "workflow.2.inputs.blur_radius", "above the maximum of 31"),
        (_with(BLUR, "3", images=["99", 0]), "workflow.3.inputs.images", "node '99', which does not exist"),
        (_with(BLUR, "3", images=["2", 1]), "workflow.3.inputs.images", "no such output"),
        (_with(BLUR, "3", images=["2"]), "workflow.3.inputs.images", "[node_id, output_index]"),
        (_with(BLUR, "3", images=[2, 0]), "workflow.3.inputs.images", "[node_id, output_index]"),
        (_with(TXT2IMG, "3", positive=["5", 0]), "workflow.3.inputs.positive", "takes CONDITIONING"),
        (_with(TXT2IMG, "4", ckpt_name="missing.safetensors"), "workflow.4.inputs.ckpt_name", "not one of"),
        (_with(TXT2IMG, "3", sampler_name="warp"), "workflow.3.inputs.sampler_name", "not one of"),
        ({"1": BLUR["1"], "2": BLUR["2"]}, "workflow", "no output node"),
    ],
    ids=[
        "unknown-class", "no-class", "inputs-not-object", "missing-required", "extra-input", "string-for-int",
        "bool-for-int", "fraction-for-int", "string-for-float", "number-for-string", "literal-for-link",
        "below-min", "above-max", "link-to-missing-node", "link-to-missing-output", "short-link", "int-node-id",
        "wrong-link-type", "checkpoint-not-offered", "sampler-not-offered", "no-output",
    ],
)  # fmt: skip
def test_each_kind_of_problem_names_node_and_input(workflow: dict[str, Any], field: str, words: str) -> None:
    fields = _fields(workflow)
    assert field in fields, fields
    assert words in fields[field]


def test_declarations_comfyui_uses() -> None:
    """Optional and hidden inputs, COMBO in the newer form, `*` and comma-separated union types."""
    info: dict[str, Any] = {
        "Source": {"input": {"required": {}}, "output": ["IMAGE,MASK", "*", ["a", "b"]], "output_node": False},
        "Sink": {
            "input": {
                "required": {"mask": ("MASK",), "any": ("*",), "mode": ("COMBO", {"options": ["fast", "slow"]})},
                "optional": {"strength": ("FLOAT", {"min": 0.0, "max": 1.0}), "flag": ("BOOLEAN", {})},
                "hidden": {"prompt": "PROMPT"},
            },
            "output": [],
            "output_node": True,
        },
    }
    base = {
        "1": {"class_type": "Source", "inputs": {}},
        "2": {"class_type": "Sink", "inputs": {"mask": ["1", 0], "any": ["1", 0], "mode": "fast"}},
    }
    assert _fields(base, info) == {}
    assert _fields(_with(base, "2", mask=["1", 1], any=42, strength=0.5, flag=True, prompt={}), info) == {}
    assert _fields(_with(base, "2", mode=["1", 2]), info) == {}  # a COMBO output into a COMBO input
    bad = _fields(_with(base, "2", mode="medium", strength=1.5, flag="yes", mask=["1", 2]), info)
    assert set(bad) == {
        "workflow.2.inputs.mode",
        "workflow.2.inputs.strength",
        "workflow.2.inputs.flag",
        "workflow.2.inputs.mask",
    }
    assert "'fast', 'slow'" in bad["workflow.2.inputs.mode"]


def test_values_of_skipped_inputs_are_left_for_later_but_not_their_existence() -> None:
    workflow = _with(BLUR, "1", width="{{width}}")
    assert check_workflow(workflow, object_info(), skip_values={("1", "width")}) == []
    renamed = _with(BLUR, "1", width=None, wide=3)
    fields = {p.field for p in check_workflow(renamed, object_info(), skip_values={("1", "wide")})}
    assert fields == {"workflow.1.inputs.width", "workflow.1.inputs.wide"}


def test_backends_with_different_models_offer_the_union() -> None:
    one, two = object_info(), object_info()
    two["CheckpointLoaderSimple"] = copy.deepcopy(two["CheckpointLoaderSimple"])
    two["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = ["only_on_two.safetensors"]
    two["Extra"] = {"input": {"required": {}}, "output": []}
    merged = merge_object_info([one, two])
    assert "Extra" in merged
    choices = Catalog.from_object_info(merged).checkpoints
    assert "only_on_two.safetensors" in choices and "dreamshaper_8.safetensors" in choices
    ok = _with(TXT2IMG, "4", ckpt_name="only_on_two.safetensors")
    assert check_workflow(ok, merged) == []
    assert "workflow.4.inputs.ckpt_name" in _fields(ok, one)


def test_problems_are_bounded() -> None:
    workflow = {str(i): {"class_type": "Nope", "inputs": {}} for i in range(500)}
    assert len(check_workflow(workflow, object_info())) == 100


def test_nodes_with_structural_inputs_are_not_held_to_declared_names() -> None:
    """Newer ComfyUI's autogrow/dynamic inputs expand into names /object_info does not list."""
    info: dict[str, Any] = {
        "Grow": {
            "input": {"required": {"values": ("COMFY_AUTOGROW_V3", {}), "scale": ("INT", {"min": 1})}},
            "output": [],
            "output_node": True,
        }
    }
    node = {"class_type": "Grow", "inputs": {"values": {}, "values.v0": 1, "values.v1": "a", "scale": 2}}
    assert check_workflow({"1": node}, info) == []
    node["inputs"]["scale"] = 0
    assert [p.field for p in check_workflow({"1": node}, info)] == ["workflow.1.inputs.scale"]
