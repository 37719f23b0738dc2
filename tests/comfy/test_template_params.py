"""The parameter types added for run-time templates: boolean, image, mask, multi-line strings;
a template's canonical JSON and digest; image inputs written as the backend's file names."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from comfy.templates import (
    FieldError,
    ParamSpec,
    ParamValidationError,
    Template,
    build_workflow,
    check_built_workflow,
    check_template,
    load_templates,
    template_digest,
    template_from_parts,
    validate_params,
)

# An img2img-like workflow: LoadImage → VAEEncode → KSampler; a boolean picks tiled decoding.
WORKFLOW: dict[str, Any] = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
    "2": {"class_type": "LoadImageMask", "inputs": {"image": "mask.png", "channel": "alpha"}},
    "3": {"class_type": "Flip", "inputs": {"pixels": ["1", 0], "vertical": False, "label": ""}},
    "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}},
}
PARAMS: list[dict[str, Any]] = [
    {"name": "image", "type": "image", "targets": [["1", "image"]], "description": "The picture."},
    {"name": "mask", "type": "mask", "targets": [["2", "image"]]},
    {"name": "vertical", "type": "boolean", "targets": [["3", "vertical"]]},
    {"name": "label", "type": "string", "multiline": True, "default": "", "targets": [["3", "label"]]},
]
# What /object_info says of these classes: LoadImage's COMBO lists the backend's input directory.
OBJECT_INFO: dict[str, Any] = {
    "LoadImage": {
        "input": {"required": {"image": [["example.png"], {"image_upload": True}]}},
        "output": ["IMAGE", "MASK"],
        "output_node": False,
    },
    "LoadImageMask": {
        "input": {"required": {"image": [["mask.png"], {}], "channel": [["alpha", "red", "green", "blue"]]}},
        "output": ["MASK"],
        "output_node": False,
    },
    "Flip": {
        "input": {"required": {"pixels": ["IMAGE"], "vertical": ["BOOLEAN", {"default": False}]},
                  "optional": {"label": ["STRING", {"multiline": True}]}},
        "output": ["IMAGE"],
        "output_node": False,
    },
    "SaveImage": {
        "input": {"required": {"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "ComfyUI"}]}},
        "output": [],
        "output_node": True,
    },
}  # fmt: skip


@pytest.fixture
def template() -> Template:
    return template_from_parts(
        name="flip", title="Flip", description="", workflow=copy.deepcopy(WORKFLOW), params=PARAMS
    )


def _errors(template: Template, raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ParamValidationError) as info:
        validate_params(template, raw)
    return {e.field: e.message for e in info.value.errors}


def test_boolean_defaults_to_false_and_takes_only_booleans(template: Template) -> None:
    image, mask = str(uuid.uuid4()), str(uuid.uuid4())
    values = validate_params(template, {"image": image, "mask": mask}).values
    assert values["vertical"] is False
    assert validate_params(template, {"image": image, "mask": mask, "vertical": True}).values["vertical"] is True
    for bad in (1, 0, "true", [True]):
        assert _errors(template, {"image": image, "mask": mask, "vertical": bad}) == {
            "vertical": "must be true or false"
        }


def test_boolean_default_true() -> None:
    params = [{"name": "vertical", "type": "boolean", "default": True, "targets": [["3", "vertical"]]}]
    flip = template_from_parts(name="f", title="", description="", workflow=WORKFLOW, params=params)
    assert validate_params(flip, {}).values == {"vertical": True}
    assert flip.title == "f"  # no title: the name


def test_image_and_mask_values_are_input_ids(template: Template) -> None:
    image = uuid.uuid4()
    values = validate_params(template, {"image": str(image).upper(), "mask": image.hex}).values
    assert values["image"] == values["mask"] == str(image)  # canonical form
    assert _errors(template, {}) == {"image": "is required", "mask": "is required"}
    bad = {"image": "example.png", "mask": "x" * 10_000}
    assert _errors(template, bad) == {
        "image": "must be the id of an uploaded input",
        "mask": "must be the id of an uploaded input",
    }
    assert _errors(template, {"image": 5, "mask": None}) == {
        "image": "must be the id of an uploaded input",
        "mask": "is required",
    }


def test_declarations_refused() -> None:
    def refused(param: dict[str, Any]) -> str:
        with pytest.raises(ValueError, match=r"\S") as info:
            ParamSpec.parse(param)
        return str(info.value)

    assert "cannot have a default" in refused({"name": "i", "type": "image", "default": str(uuid.uuid4())})
    assert "only string parameters can be multiline" in refused({"name": "n", "type": "int", "multiline": True})
    assert "multiline must be true or false" in refused({"name": "s", "type": "string", "multiline": "yes"})
    assert "has type 'video'" in refused({"name": "v", "type": "video"})


def test_multiline_is_a_hint(template: Template) -> None:
    assert template.param("label").multiline is True
    assert template.param("image").multiline is False
    text = "line one\nline two"
    values = validate_params(template, {"image": str(uuid.uuid4()), "mask": str(uuid.uuid4()), "label": text}).values
    assert values["label"] == text


def test_build_writes_the_uploaded_file_names(template: Template) -> None:
    image, mask = str(uuid.uuid4()), str(uuid.uuid4())
    params = validate_params(template, {"image": image, "mask": mask, "vertical": True})
    files = {image: "safelight-aaaa.png", mask: "safelight-bbbb.png"}
    built = build_workflow(template, params, filename_prefix="out", input_files=files)
    assert built["1"]["inputs"]["image"] == "safelight-aaaa.png"
    assert built["2"]["inputs"]["image"] == "safelight-bbbb.png"
    assert built["3"]["inputs"]["vertical"] is True
    assert built["4"]["inputs"]["filename_prefix"] == "out"
    assert template.workflow["1"]["inputs"]["image"] == "example.png"  # the template is untouched
    with pytest.raises(ValueError, match="was not uploaded"):
        build_workflow(template, params, filename_prefix="out", input_files={image: "safelight-aaaa.png"})
    # Before delivery (the API's check) the ids themselves stand in.
    assert build_workflow(template, params, filename_prefix="out")["1"]["inputs"]["image"] == image


def test_input_targets_exempt_from_the_choice_check(template: Template) -> None:
    image, mask = str(uuid.uuid4()), str(uuid.uuid4())
    params = validate_params(template, {"image": image, "mask": mask})
    built = build_workflow(template, params, filename_prefix="out")
    assert check_built_workflow(template, built, OBJECT_INFO) == []
    assert check_template(template, OBJECT_INFO) == []
    # Other inputs still are held to their choices.
    built["2"]["inputs"]["channel"] = "purple"
    problems = check_built_workflow(template, built, OBJECT_INFO)
    assert len(problems) == 1 and problems[0].field == "workflow.2.inputs.channel"
    # A raw check of the same workflow (no parameters to exempt) does refuse an unknown file.
    built["2"]["inputs"]["channel"] = "alpha"
    bare = template_from_parts(name="bare", title="", description="", workflow=built, params=[])
    fields = [e.field for e in check_built_workflow(bare, built, OBJECT_INFO)]
    assert fields == ["workflow.1.inputs.image", "workflow.2.inputs.image"]


def test_a_template_needs_no_parameter() -> None:
    bare = template_from_parts(name="fixed", title="Fixed", description="", workflow=WORKFLOW, params=[])
    params = validate_params(bare, {})
    assert params.values == {} and params.seed is None
    assert build_workflow(bare, params, filename_prefix="p")["4"]["inputs"]["filename_prefix"] == "p"


def test_json_round_trip_and_digest() -> None:
    txt2img = load_templates()["txt2img"]
    as_json = [p.to_json() for p in txt2img.params]
    again = template_from_parts(
        name="txt2img", title=txt2img.title, description="", workflow=txt2img.workflow, params=as_json
    )
    assert again.params == txt2img.params
    digest = template_digest(txt2img.workflow, txt2img.params)
    assert len(digest) == 64 and digest == template_digest(again.workflow, again.params)
    changed = copy.deepcopy(dict(txt2img.workflow))
    changed["3"]["inputs"]["steps"] = 21
    assert template_digest(changed, txt2img.params) != digest
    flipped = template_from_parts(name="f", title="", description="", workflow=WORKFLOW, params=PARAMS)
    assert [p.to_json() for p in flipped.params][3] == {
        "name": "label", "type": "string", "default": "", "multiline": True, "targets": [["3", "label"]],
    }  # fmt: skip


def test_from_parts_names_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="no class_type"):
        template_from_parts(name="x", title="", description="", workflow={"1": {"inputs": {}}}, params=[])
    with pytest.raises(ValueError, match="targets node '9'"):
        template_from_parts(
            name="x", title="", description="", workflow=WORKFLOW,
            params=[{"name": "v", "type": "boolean", "targets": [["9", "vertical"]]}],
        )  # fmt: skip
    assert FieldError("a", "b").field == "a"
