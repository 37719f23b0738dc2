"""Editor saves (UI format) → API format, against the backends' `/object_info`.

The saves in ui_workflows/ are described in its README; object_info.json holds the classes they use.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from comfy.templates import SHIPPED_DIR
from comfy.ui_workflow import UiWorkflowError, is_ui_workflow, to_api_workflow
from comfy.workflow_check import check_workflow

HERE = Path(__file__).resolve().parent / "ui_workflows"
SAVES = sorted(p.name.removesuffix(".ui.json") for p in HERE.glob("*.ui.json"))


def object_info() -> dict[str, Any]:
    info: dict[str, Any] = json.loads((HERE / "object_info.json").read_text())
    return info


def save(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((HERE / f"{name}.ui.json").read_text())
    return doc


def node(doc: dict[str, Any], node_id: int) -> dict[str, Any]:
    found: dict[str, Any] = next(n for n in doc["nodes"] if n["id"] == node_id)
    return found


def test_the_saves_are_there() -> None:
    assert SAVES == ["controlnet_lora", "img2img_reroute_bypass", "inpaint_v1", "txt2img", "upscale"]


def test_a_ui_save_of_the_shipped_txt2img_is_its_graph() -> None:
    shipped = json.loads((SHIPPED_DIR / "txt2img.json").read_text())
    assert to_api_workflow(save("txt2img"), object_info()) == shipped


@pytest.mark.parametrize("name", SAVES)
def test_every_save_converts_to_a_workflow_the_backend_takes(name: str) -> None:
    doc = save(name)
    assert is_ui_workflow(doc)
    workflow = to_api_workflow(doc, object_info())
    placeholder = {("4", "ckpt_name")} if name == "txt2img" else set()  # the shipped graph names no real model
    assert check_workflow(workflow, object_info(), skip_values=placeholder) == []
    assert not is_ui_workflow(workflow)
    assert json.loads(json.dumps(workflow)) == workflow  # plain JSON, ids as strings


def test_reroute_bypass_mute_primitive_and_named_widget_values() -> None:
    workflow = to_api_workflow(save("img2img_reroute_bypass"), object_info())
    assert sorted(workflow, key=int) == ["1", "3", "5", "6", "7", "8", "10", "11", "13"]  # no 2, 4, 9, 12
    assert workflow["5"]["inputs"] == {"pixels": ["3", 0], "vae": ["1", 2]}  # bypassed scale, reroute
    assert workflow["10"]["inputs"]["vae"] == ["1", 2]
    assert workflow["8"]["inputs"]["seed"] == 42  # the primitive's value, not the sampler's own 1234
    assert workflow["8"]["inputs"]["denoise"] == 0.55
    assert workflow["3"]["inputs"] == {"image": "portrait.png"}  # the upload button's value is not sent
    assert workflow["13"]["inputs"] == {
        "frame_rate": 8,
        "loop_count": 0,
        "filename_prefix": "AnimateDiff",
        "format": "image/gif",
        "pingpong": False,
        "save_output": True,
        "images": ["10", 0],
    }
    assert workflow["6"]["_meta"] == {"title": "CLIP Text Encode (Prompt)"}  # the class's display name


def test_old_control_values_primitive_into_a_converted_widget_and_two_outputs() -> None:
    workflow = to_api_workflow(save("controlnet_lora"), object_info())
    sampler = workflow["12"]["inputs"]
    assert (sampler["noise_seed"], sampler["steps"], sampler["cfg"]) == (7, 30, 7.5)  # `true` was the control
    assert (sampler["positive"], sampler["negative"]) == (["9", 0], ["9", 1])
    assert workflow["9"]["inputs"]["strength"] == 0.75
    assert "10" not in workflow and "15" not in workflow


def test_schema_version_1_links_and_upload_value_after_the_required_widgets() -> None:
    workflow = to_api_workflow(save("inpaint_v1"), object_info())
    assert workflow["3"]["inputs"] == {"image": "portrait.png", "channel": "red"}
    assert workflow["4"]["inputs"] == {"grow_mask_by": 8, "pixels": ["2", 0], "vae": ["1", 2], "mask": ["3", 0]}
    assert workflow["7"]["inputs"]["seed"] == 987654321


def test_is_ui_workflow() -> None:
    assert is_ui_workflow({"nodes": [], "links": []}) and is_ui_workflow({"nodes": []})
    assert not is_ui_workflow(json.loads((SHIPPED_DIR / "txt2img.json").read_text()))
    for other in (None, [], "nodes", {"nodes": {}}, {"nodes": [], "links": {}}):
        assert not is_ui_workflow(other)


def test_a_muted_origin_removes_the_input_and_an_unlisted_link_keeps_the_widget_value() -> None:
    doc = save("img2img_reroute_bypass")
    node(doc, 6)["mode"] = 2
    node(doc, 9)["outputs"][0]["links"] = []
    doc["links"] = [link for link in doc["links"] if link[0] != 12]  # the primitive's link is gone
    workflow = to_api_workflow(doc, object_info())
    assert "6" not in workflow and "positive" not in workflow["8"]["inputs"]
    assert workflow["8"]["inputs"]["seed"] == 1234
    assert check_workflow(workflow, object_info())  # a required input is missing now: the checker says so


def test_a_bypassed_node_passes_its_input_of_the_output_type() -> None:
    doc = save("controlnet_lora")
    node(doc, 9)["mode"] = 4  # ControlNetApplyAdvanced: positive→positive, negative→negative
    node(doc, 2)["mode"] = 4  # LoraLoader: MODEL→MODEL, CLIP→CLIP
    workflow = to_api_workflow(doc, object_info())
    assert (workflow["12"]["inputs"]["positive"], workflow["12"]["inputs"]["negative"]) == (["5", 0], ["6", 0])
    assert workflow["12"]["inputs"]["model"] == ["1", 0] and workflow["3"]["inputs"]["clip"] == ["1", 1]

    doc = save("upscale")
    node(doc, 3)["mode"] = 4  # its output IMAGE is its second input (slot 1), not the same slot
    node(doc, 4)["mode"] = 4
    assert to_api_workflow(doc, object_info())["5"]["inputs"]["images"] == ["1", 0]

    doc = save("upscale")
    node(doc, 1)["mode"] = 4  # LoadImage has no input to pass on: its consumer loses the input
    assert "image" not in to_api_workflow(doc, object_info())["3"]["inputs"]


def test_a_bypassed_node_with_nothing_to_pass_keeps_the_widget_value_and_wildcards_fit() -> None:
    info = {
        "Source": {"input": {"required": {}}, "output": ["IMAGE"]},
        "Any": {"input": {"required": {"x": ["IMAGE,MASK", {}]}}, "output": ["IMAGE"]},
        "Sink": {"input": {"required": {"image": ["IMAGE"], "size": ["INT", {}]}}},
    }

    def graph(mode: int) -> dict[str, Any]:
        return {
            "nodes": [
                {"id": 1, "type": "Source", "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}]},
                {"id": 2, "type": "Any", "mode": mode, "inputs": [{"name": "x", "type": "IMAGE,MASK", "link": 1}]},
                {
                    "id": 3,
                    "type": "Sink",
                    "inputs": [
                        {"name": "image", "type": "IMAGE", "link": 2},
                        {"name": "size", "type": "INT", "widget": {"name": "size"}, "link": 3},
                    ],
                    "widgets_values": [64],
                },
                {"id": 4, "type": "Any", "mode": 4, "outputs": [{"name": "INT", "type": "INT", "links": [3]}]},
            ],
            "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"], [3, 4, 0, 3, 1, "INT"]],
        }

    bypassed = to_api_workflow(graph(4), info)
    assert bypassed["3"]["inputs"] == {"size": 64, "image": ["1", 0]}  # through "IMAGE,MASK"; 4 has nothing
    muted = to_api_workflow(graph(2), info)
    assert muted["3"]["inputs"] == {"size": 64} and "2" not in muted


def test_input_order_and_widget_lists() -> None:
    info = {
        "Points": {
            "input": {"optional": {"extra": ["INT", {}]}, "required": {"b": ["STRING", {}], "a": ["INT", {}]}},
            "input_order": {"required": ["a", "b"], "optional": ["extra"]},
        }
    }
    doc = {"nodes": [{"id": 1, "type": "Points", "widgets_values": [3, [1, 2], 5]}], "links": []}
    assert to_api_workflow(doc, info)["1"]["inputs"] == {"a": 3, "b": {"__value__": [1, 2]}, "extra": 5}
    del info["Points"]["input_order"]  # required then optional, in declaration order
    assert to_api_workflow(doc, info)["1"]["inputs"] == {"b": 3, "a": {"__value__": [1, 2]}, "extra": 5}


def test_control_values_old_style_missing_and_mixed() -> None:
    info = object_info()
    ksampler = copy.deepcopy(info["KSampler"])
    del ksampler["input"]["required"]["seed"][1]["control_after_generate"]  # an older backend: named "seed"
    info["KSampler"] = ksampler
    assert to_api_workflow(save("txt2img"), info)["3"]["inputs"]["steps"] == 20

    doc = save("txt2img")
    node(doc, 3)["widgets_values"] = [5, 20, 7, "euler", "normal", 1]  # saved without a control value
    assert to_api_workflow(doc, object_info())["3"]["inputs"]["seed"] == 5

    info["Both"] = {
        "input": {
            "required": {
                "image": [["a.png"], {"image_upload": True}],
                "seed": ["INT", {"control_after_generate": True}],
                "steps": ["INT", {}],
            }
        }
    }
    mixed = {"nodes": [{"id": 1, "type": "Both", "widgets_values": ["a.png", 9, 3, "image"]}], "links": []}
    assert to_api_workflow(mixed, info)["1"]["inputs"] == {"image": "a.png", "seed": 9, "steps": 3}


def test_missing_widget_values_take_the_editors_defaults() -> None:
    doc = save("txt2img")
    del node(doc, 9)["widgets_values"]  # older editors saved SaveImage without any
    assert to_api_workflow(doc, object_info())["9"]["inputs"] == {"filename_prefix": "ComfyUI", "images": ["8", 0]}

    info = {
        "Grown": {
            "input": {
                "required": {"seed": ["INT", {"control_after_generate": True}], "mode": [["a", "b"]]},
                "optional": {"eta": ["FLOAT", {"default": 0.5}], "tag": ["STRING", {}], "on": ["BOOLEAN", {}]},
            }
        }
    }

    def convert(values: list[Any]) -> dict[str, Any]:
        doc = {"nodes": [{"id": 1, "type": "Grown", "widgets_values": values}], "links": []}
        inputs: dict[str, Any] = to_api_workflow(doc, info)["1"]["inputs"]
        return inputs

    defaults = {"eta": 0.5, "tag": "", "on": False}
    assert convert([4, "fixed", "b"]) == {"seed": 4, "mode": "b", **defaults}  # saved before the optional ones
    assert convert([4, "b"]) == {"seed": 4, "mode": "b", **defaults}
    assert convert([4, "fixed", "b", 0.1]) == {"seed": 4, "mode": "b", "eta": 0.1, "tag": "", "on": False}
    with pytest.raises(UiWorkflowError, match="has 1 widget values"):
        convert([4])  # a required widget is missing: no guessing


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: node(d, 5).update(type="NoSuchNode"), r"node #5 \(NoSuchNode\): the backends offer no node class"),
        (lambda d: node(d, 3).update(widgets_values=[1, 2]), r"node #3 \(KSampler\) has 2 widget values"),
        (lambda d: node(d, 5).update(widgets_values=[1, 2, 3, 4]), r"node #5 \(EmptyLatentImage\) has 4 widget"),
        (lambda d: d["links"].__setitem__(0, [1, 99, 0, 3, 0, "MODEL"]), r"node #3 \(KSampler\): input 'model' .* #99"),
        (lambda d: node(d, 5).update(type="workflow>MyGroup"), r"node #5 .* group node, which is not supported"),
        (lambda d: d.update(definitions={"subgraphs": [{"id": "sub"}]}) or node(d, 5).update(type="sub"), "subgraph"),
        (lambda d: d["nodes"].append(dict(node(d, 5))), "node id 5 is used twice"),
        (lambda d: d["links"].append({"id": 1}), r"links\[9\] is not a link"),
        (lambda d: node(d, 5).update(widgets_values="512"), "widgets_values is not a list"),
        (lambda d: node(d, 3).update(inputs=3.5), r"node #3 \(KSampler\): inputs is not a list"),
        (lambda d: node(d, 5).pop("type"), "node #5 has no type"),
    ],
)
def test_errors_name_the_node(change: Any, message: str) -> None:
    doc = save("txt2img")
    change(doc)
    with pytest.raises(UiWorkflowError, match=message):
        to_api_workflow(doc, object_info())


def test_a_muted_or_bypassed_node_of_an_unknown_class_is_no_error() -> None:
    doc = save("img2img_reroute_bypass")
    node(doc, 12)["type"] = "SomeoneElsesPreview"
    node(doc, 4)["type"] = "SomeoneElsesScale"
    assert "12" not in to_api_workflow(doc, object_info())


def test_a_reroute_loop_is_an_error() -> None:
    doc = save("img2img_reroute_bypass")
    node(doc, 2)["inputs"][0]["link"] = 5  # the reroute feeds itself
    with pytest.raises(UiWorkflowError, match="a loop"):
        to_api_workflow(doc, object_info())


def test_following_links_is_bounded() -> None:
    # 200 reroutes in a chain and 1,100 sockets on one node that all read its end: 220,000 steps
    nodes: list[dict[str, Any]] = [
        {"id": 0, "type": "EmptyLatentImage", "widgets_values": [512, 512, 1]},
        *({"id": i, "type": "Reroute", "inputs": [{"name": "", "type": "*", "link": i}]} for i in range(1, 201)),
        {
            "id": 201,
            "type": "VAEDecode",
            "inputs": [{"name": f"s{k}", "type": "LATENT", "link": 201} for k in range(1100)],
        },
    ]
    links = [[i + 1, i, 0, i + 1, 0, "LATENT"] for i in range(201)]
    with pytest.raises(UiWorkflowError, match="more than 200000 steps"):
        to_api_workflow({"nodes": nodes, "links": links}, object_info())


def test_bounds() -> None:
    doc = save("txt2img")
    with pytest.raises(UiWorkflowError, match="8 nodes; at most 7"):
        to_api_workflow(doc, object_info(), max_nodes=7)
    with pytest.raises(UiWorkflowError, match="9 links; at most 8"):
        to_api_workflow(doc, object_info(), max_links=8)
    with pytest.raises(UiWorkflowError, match="not a UI-format workflow"):
        to_api_workflow({"3": {"class_type": "KSampler", "inputs": {}}}, object_info())
