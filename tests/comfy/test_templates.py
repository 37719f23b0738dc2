from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from comfy.catalog import Catalog
from comfy.fake.catalog import object_info
from comfy.templates import (
    MAX_SEED,
    FieldError,
    Limits,
    ParamValidationError,
    Template,
    TemplateError,
    build_workflow,
    check_built_workflow,
    check_raw_workflow,
    check_template,
    load_templates,
    validate_params,
)
from settings import Settings

CATALOG = Catalog(
    checkpoints=("dreamshaper_8.safetensors", "sd_xl_base_1.0.safetensors"),
    loras=("add_detail.safetensors", "film_grain.safetensors"),
    samplers=("euler", "dpmpp_2m"),
    schedulers=("normal", "karras"),
    node_classes=frozenset({"KSampler", "LoraLoader"}),
)


@pytest.fixture(scope="module")
def txt2img() -> Template:
    return load_templates()["txt2img"]


def _errors(template: Template, raw: dict[str, Any], **kwargs: Any) -> tuple[FieldError, ...]:
    with pytest.raises(ParamValidationError) as info:
        validate_params(template, raw, **kwargs)
    return info.value.errors


def test_shipped_template_shape(txt2img: Template) -> None:
    classes = sorted(n["class_type"] for n in txt2img.workflow.values())
    assert classes == sorted(
        ["CheckpointLoaderSimple", "CLIPTextEncode", "CLIPTextEncode", "EmptyLatentImage", "KSampler",
         "VAEDecode", "SaveImage"]
    )  # fmt: skip
    names = [p.name for p in txt2img.params]
    assert names == [
        "checkpoint", "loras", "prompt", "negative_prompt", "width", "height", "steps", "cfg", "sampler",
        "scheduler", "seed", "batch_size",
    ]  # fmt: skip
    assert txt2img.param("width").multiple_of == 8
    assert txt2img.param("checkpoint").catalog == "checkpoints"


def test_defaults_and_random_seed(txt2img: Template) -> None:
    params = validate_params(txt2img, {"prompt": "a lighthouse"}, catalog=CATALOG)
    values = params.values
    assert values["checkpoint"] == "dreamshaper_8.safetensors"
    assert values["loras"] == []
    assert (values["width"], values["height"], values["steps"], values["batch_size"]) == (512, 512, 20, 1)
    assert values["cfg"] == 7.0 and values["sampler"] == "euler" and values["scheduler"] == "normal"
    assert 0 <= values["seed"] <= MAX_SEED and params.seed == values["seed"]
    other = validate_params(txt2img, {"prompt": "a lighthouse"}, catalog=CATALOG)
    assert other.seed != params.seed  # 2^-53 chance of a false failure
    given = validate_params(txt2img, {"prompt": "x", "seed": 42, "checkpoint": "sd_xl_base_1.0.safetensors"})
    assert given.seed == 42 and given.values["checkpoint"] == "sd_xl_base_1.0.safetensors"


def test_null_means_default(txt2img: Template) -> None:
    values = validate_params(txt2img, {"prompt": "x", "width": None, "seed": None}, catalog=CATALOG).values
    assert values["width"] == 512 and isinstance(values["seed"], int)


def test_every_bad_field_reported(txt2img: Template) -> None:
    raw = {
        "prompt": "",
        "negative_prompt": 5,
        "width": 100,
        "height": 4096,
        "steps": 0,
        "cfg": 31,
        "sampler": "nope",
        "scheduler": 3,
        "seed": -1,
        "batch_size": 9,
        "checkpoint": "missing.safetensors",
        "colour": "red",
    }
    errors = _errors(txt2img, raw, catalog=CATALOG)
    by_field = {e.field: e.message for e in errors}
    assert by_field == {
        "colour": "unknown parameter",
        "checkpoint": by_field["checkpoint"],
        "prompt": "must not be empty",
        "negative_prompt": "must be a string",
        "width": "must be a multiple of 8",
        "height": "must be between 64 and 2048",
        "steps": "must be between 1 and 150",
        "cfg": "must be between 0 and 30",
        "sampler": by_field["sampler"],
        "scheduler": "must be a string",
        "seed": "must be between 0 and 9007199254740991",
        "batch_size": "must be between 1 and 8",
    }
    assert "not one of the available checkpoints" in by_field["checkpoint"]
    assert "dreamshaper_8.safetensors" in by_field["checkpoint"]
    assert "'nope' is not one of the available samplers" in by_field["sampler"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("width", 63, "must be between 64 and 2048"),
        ("width", 2056, "must be between 64 and 2048"),
        ("width", 516, "must be a multiple of 8"),
        ("width", 512.0, "must be an integer"),
        ("width", True, "must be an integer"),
        ("height", "512", "must be an integer"),
        ("steps", 151, "must be between 1 and 150"),
        ("cfg", "7", "must be a number"),
        ("cfg", -0.5, "must be between 0 and 30"),
        ("cfg", float("nan"), "must be a number"),
        ("seed", MAX_SEED + 1, "must be between 0 and 9007199254740991"),
        ("seed", 1.5, "must be an integer"),
        ("batch_size", 0, "must be between 1 and 8"),
        ("prompt", "x" * 4001, "must be at most 4000 characters"),
        ("prompt", "   ", "must not be empty"),
        ("loras", "add_detail", "must be a list of {name, strength}"),
    ],
)
def test_single_field_errors(txt2img: Template, field: str, value: Any, message: str) -> None:
    raw = {"prompt": "ok", field: value}
    assert _errors(txt2img, raw, catalog=CATALOG) == (FieldError(field, message),)


def test_prompt_is_required(txt2img: Template) -> None:
    assert _errors(txt2img, {}, catalog=CATALOG) == (FieldError("prompt", "is required"),)


def test_checkpoint_required_without_catalog(txt2img: Template) -> None:
    assert _errors(txt2img, {"prompt": "x"}) == (FieldError("checkpoint", "is required"),)
    assert _errors(txt2img, {"prompt": "x"}, catalog=Catalog(samplers=("euler",), schedulers=("normal",))) == (
        FieldError("checkpoint", "the backends offer no checkpoints"),
    )


def test_enum_without_catalog_accepts_any_name(txt2img: Template) -> None:
    values = validate_params(txt2img, {"prompt": "x", "checkpoint": "whatever.ckpt", "sampler": "new"}).values
    assert values["sampler"] == "new"


def test_limits_narrow_the_template(txt2img: Template) -> None:
    limits = Limits(max_batch_size=2, max_pixels=512 * 512, max_steps=30, max_prompt_length=10)
    raw = {"prompt": "x" * 11, "batch_size": 3, "steps": 31, "width": 1024, "height": 512, "checkpoint": "c"}
    assert {e.field: e.message for e in _errors(txt2img, raw, limits=limits)} == {
        "prompt": "must be at most 10 characters",
        "batch_size": "must be between 1 and 2",
        "steps": "must be between 1 and 30",
        "width": "width * height = 524288 pixels exceeds the limit of 262144",
    }
    settings = Settings(max_batch_size=4, max_steps=50)
    assert Limits.from_settings(settings) == Limits(4, settings.max_pixels, 50, settings.max_prompt_length)


def test_lora_errors(txt2img: Template) -> None:
    loras: list[Any] = [
        {"name": "add_detail.safetensors", "strength": 0.8},
        {"name": "add_detail.safetensors", "strength": 4.5},
        {"name": "unknown.safetensors"},
        "film_grain",
        {"strength": 1, "weight": 2},
        {"name": "film_grain.safetensors", "strength": "high"},
    ]
    errors = _errors(txt2img, {"prompt": "x", "loras": loras}, catalog=CATALOG)
    assert [e.field for e in errors] == [
        "loras[1].strength",
        "loras[2].name",
        "loras[3]",
        "loras[4].weight",
        "loras[4].name",
        "loras[5].strength",
    ]
    assert errors[0].message == "must be between -4 and 4"
    too_many = [{"name": "add_detail.safetensors", "strength": 1}] * 9
    assert _errors(txt2img, {"prompt": "x", "loras": too_many}, catalog=CATALOG) == (
        FieldError("loras", "at most 8 LoRAs"),
    )


def test_build_workflow(txt2img: Template) -> None:
    raw = {
        "prompt": "a red fox",
        "negative_prompt": "blurry",
        "checkpoint": "sd_xl_base_1.0.safetensors",
        "width": 768,
        "height": 512,
        "steps": 30,
        "cfg": 5.5,
        "sampler": "dpmpp_2m",
        "scheduler": "karras",
        "seed": 1234,
        "batch_size": 2,
    }
    params = validate_params(txt2img, raw, catalog=CATALOG)
    workflow = build_workflow(txt2img, params, filename_prefix="safelight/gen-1")
    assert workflow["4"]["inputs"]["ckpt_name"] == "sd_xl_base_1.0.safetensors"
    assert workflow["6"]["inputs"]["text"] == "a red fox"
    assert workflow["7"]["inputs"]["text"] == "blurry"
    assert workflow["5"]["inputs"] == {"width": 768, "height": 512, "batch_size": 2}
    sampler = workflow["3"]["inputs"]
    assert (sampler["seed"], sampler["steps"], sampler["cfg"]) == (1234, 30, 5.5)
    assert (sampler["sampler_name"], sampler["scheduler"]) == ("dpmpp_2m", "karras")
    assert workflow["9"]["inputs"]["filename_prefix"] == "safelight/gen-1"
    assert workflow["3"]["inputs"]["model"] == ["4", 0]
    # a fresh copy every time: the template is untouched
    workflow["6"]["inputs"]["text"] = "changed"
    assert txt2img.workflow["6"]["inputs"]["text"] == ""
    assert build_workflow(txt2img, params, filename_prefix="p")["6"]["inputs"]["text"] == "a red fox"


def test_build_workflow_inserts_lora_chain(txt2img: Template) -> None:
    loras = [
        {"name": "add_detail.safetensors", "strength": 0.5},
        {"name": "film_grain.safetensors", "strength": -1},
    ]
    params = validate_params(txt2img, {"prompt": "x", "loras": loras}, catalog=CATALOG)
    assert params.values["loras"] == [
        {"name": "add_detail.safetensors", "strength": 0.5},
        {"name": "film_grain.safetensors", "strength": -1.0},
    ]
    workflow = build_workflow(txt2img, params, filename_prefix="p")
    first, second = workflow["10"], workflow["11"]
    assert first["class_type"] == second["class_type"] == "LoraLoader"
    assert first["inputs"] == {
        "lora_name": "add_detail.safetensors",
        "strength_model": 0.5,
        "strength_clip": 0.5,
        "model": ["4", 0],
        "clip": ["4", 1],
    }
    assert second["inputs"]["model"] == ["10", 0] and second["inputs"]["clip"] == ["10", 1]
    assert second["inputs"]["strength_model"] == -1.0
    assert workflow["3"]["inputs"]["model"] == ["11", 0]
    assert workflow["6"]["inputs"]["clip"] == ["11", 1]
    assert workflow["7"]["inputs"]["clip"] == ["11", 1]
    assert workflow["8"]["inputs"]["vae"] == ["4", 2]  # the VAE still comes from the checkpoint


def test_build_rejects_params_of_another_template(txt2img: Template) -> None:
    params = validate_params(txt2img, {"prompt": "x", "checkpoint": "c"})
    other = Template("other", "Other", "", txt2img.workflow, txt2img.params)
    with pytest.raises(ValueError, match="txt2img"):
        build_workflow(other, params, filename_prefix="p")


def _write(directory: Path, name: str, workflow: Any, params: Any) -> None:
    (directory / f"{name}.json").write_text(json.dumps(workflow))
    if params is not None:
        (directory / f"{name}.params.json").write_text(json.dumps(params))


SIMPLE_WORKFLOW = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
}
SIMPLE_PARAMS = {
    "title": "Blank",
    "params": [{"name": "width", "type": "int", "default": 8, "min": 1, "max": 64, "targets": [["1", "width"]]}],
}


def test_operator_directory(tmp_path: Path) -> None:
    _write(tmp_path, "blank", SIMPLE_WORKFLOW, SIMPLE_PARAMS)
    templates = load_templates([tmp_path])
    assert set(templates) == {"txt2img", "img2img", "inpaint", "upscale", "blank"}
    blank = templates["blank"]
    assert blank.title == "Blank"
    params = validate_params(blank, {"width": 16})
    assert build_workflow(blank, params, filename_prefix="out")["2"]["inputs"]["filename_prefix"] == "out"


@pytest.mark.parametrize(
    ("workflow", "params", "bad_file", "message"),
    [
        ("not json", SIMPLE_PARAMS, "bad.json", "cannot read JSON"),
        ({"1": {"inputs": {}}}, SIMPLE_PARAMS, "bad.json", "no class_type"),
        (SIMPLE_WORKFLOW, None, "bad.json", "missing parameter declaration"),
        (SIMPLE_WORKFLOW, {"params": [{"name": "w", "type": "colour"}]}, "bad.params.json", "type 'colour'"),
        (
            SIMPLE_WORKFLOW,
            {"params": [{"name": "w", "type": "int", "targets": [["9", "width"]]}]},
            "bad.params.json",
            "node '9'",
        ),
        (
            SIMPLE_WORKFLOW,
            {"params": [{"name": "w", "type": "int", "targets": [["1", "wdth"]]}]},
            "bad.params.json",
            "no such input",
        ),
        (
            SIMPLE_WORKFLOW,
            {"params": [{"name": "w", "type": "int", "default": 100, "max": 64, "targets": []}]},
            "bad.params.json",
            "default of 'w' is invalid",
        ),
        (SIMPLE_WORKFLOW, {"params": [{"name": "w", "type": "enum"}]}, "bad.params.json", "needs choices"),
        (SIMPLE_WORKFLOW, {"params": [{"name": "w", "type": "loras"}]}, "bad.params.json", "source_node"),
    ],
)
def test_bad_template_files_are_named(tmp_path: Path, workflow: Any, params: Any, bad_file: str, message: str) -> None:
    if isinstance(workflow, str):
        (tmp_path / "bad.json").write_text(workflow)
        (tmp_path / "bad.params.json").write_text(json.dumps(params))
    else:
        _write(tmp_path, "bad", workflow, params)
    with pytest.raises(TemplateError) as info:
        load_templates([tmp_path])
    assert str(tmp_path / bad_file) in str(info.value)
    assert message in str(info.value)


def test_missing_directory_and_orphan_params(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="does not exist"):
        load_templates([tmp_path / "nope"])
    (tmp_path / "orphan.params.json").write_text(json.dumps(SIMPLE_PARAMS))
    with pytest.raises(TemplateError, match=r"orphan\.params\.json"):
        load_templates([tmp_path])


def test_raw_workflow_allowlist(txt2img: Template) -> None:
    allowed = {n["class_type"] for n in txt2img.workflow.values()}
    copied = check_raw_workflow(txt2img.workflow, allowed_classes=allowed, filename_prefix="admin/x")
    assert copied["9"]["inputs"]["filename_prefix"] == "admin/x"
    assert txt2img.workflow["9"]["inputs"]["filename_prefix"] == "safelight"
    extra = {"20": {"class_type": "ExecuteShell", "inputs": {}}, "21": {"inputs": {}}, "22": 3}
    bad = {**txt2img.workflow, **extra}
    with pytest.raises(ParamValidationError) as info:
        check_raw_workflow(bad, allowed_classes=allowed)
    assert [e.field for e in info.value.errors] == [
        "workflow.20.class_type",
        "workflow.21.class_type",
        "workflow.22.class_type",
    ]
    assert "'ExecuteShell' is not allowed" in info.value.errors[0].message
    with pytest.raises(ParamValidationError):
        check_raw_workflow([], allowed_classes=allowed)


def test_shipped_template_fits_the_fake_and_its_parameters_are_checked_by_name(txt2img: Template) -> None:
    info = object_info()
    assert check_template(txt2img, info) == []
    params = validate_params(
        txt2img, {"prompt": "a", "width": 512, "height": 512, "checkpoint": "dreamshaper_8.safetensors"}
    )
    assert check_built_workflow(txt2img, build_workflow(txt2img, params, filename_prefix="p"), info) == []
    # The template allows steps up to 150; a node that took at most 100 is reported under `steps`.
    narrow = copy.deepcopy(info)
    narrow["KSampler"]["input"]["required"]["steps"][1]["max"] = 100
    many = validate_params(txt2img, {"prompt": "a", "steps": 120, "checkpoint": "dreamshaper_8.safetensors"})
    built = build_workflow(txt2img, many, filename_prefix="p")
    assert check_built_workflow(txt2img, built, narrow) == [FieldError("steps", "120 is above the maximum of 100")]


def test_a_template_that_does_not_fit_names_node_and_input(txt2img: Template) -> None:
    workflow = copy.deepcopy(dict(txt2img.workflow))
    workflow["3"]["inputs"]["denoise"] = "full"  # not a parameter's target: the template's own value
    workflow["5"]["inputs"]["width"] = "{{width}}"  # a parameter's target: its value comes with each request
    broken = Template("broken", "", "", workflow, txt2img.params)
    assert [e.field for e in check_template(broken, object_info())] == ["workflow.3.inputs.denoise"]
    params = validate_params(broken, {"prompt": "a", "checkpoint": "dreamshaper_8.safetensors"})
    errors = check_built_workflow(broken, build_workflow(broken, params, filename_prefix="p"), object_info())
    assert [e.field for e in errors] == ["workflow.3.inputs.denoise"]
    assert errors[0].message.startswith("template 'broken' does not fit the backends: ")


def test_raw_workflow_against_object_info() -> None:
    workflow = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 0, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }
    allowed = ["EmptyImage", "SaveImage"]
    assert check_raw_workflow(workflow, allowed_classes=allowed)  # shape and allowlist only
    with pytest.raises(ParamValidationError) as info:
        check_raw_workflow(workflow, allowed_classes=allowed, object_info=object_info())
    assert info.value.errors == (FieldError("workflow.1.inputs.width", "0 is below the minimum of 1"),)
