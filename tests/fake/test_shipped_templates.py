"""The shipped img2img, inpaint and upscale templates, built as the worker builds them and run on the fake:
they validate against its `/object_info`, read the uploaded files and give results of the right size."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
import pytest
from PIL import Image

from comfy.templates import build_workflow, check_built_workflow, check_template, load_templates, validate_params
from tests.fake.test_output_kinds import run, view
from tests.fake.test_uploads import png, upload

BASE = {"checkpoint": "dreamshaper_8.safetensors", "steps": 2, "seed": 5}


async def _result(http: httpx.AsyncClient, name: str, params: dict[str, Any], files: dict[str, str]) -> Image.Image:
    templates = load_templates()
    template = templates[name]
    info = (await http.get("/object_info")).json()
    assert check_template(template, info) == []
    validated = validate_params(template, params)
    workflow = build_workflow(template, validated, filename_prefix="safelight/test", input_files=files)
    assert check_built_workflow(template, workflow, info) == []
    entry = await run(http, workflow)
    (item,) = [image for output in entry["outputs"].values() for image in output["images"]]
    return Image.open(io.BytesIO((await view(http, item)).content))


async def test_img2img_keeps_the_size_and_moves_by_denoise(http: httpx.AsyncClient) -> None:
    image_id = str(uuid.uuid4())
    await upload(http, "safelight-img.png", png((30, 90, 150), size=(64, 40)))
    files = {image_id: "safelight-img.png"}
    kept = await _result(http, "img2img", {**BASE, "image": image_id, "prompt": "a boat", "denoise": 0.0}, files)
    assert (kept.size, kept.getpixel((10, 10))) == ((64, 40), (30, 90, 150))
    moved = await _result(http, "img2img", {**BASE, "image": image_id, "prompt": "a boat"}, files)
    assert moved.size == (64, 40)
    assert moved.getpixel((10, 10)) != (30, 90, 150)


async def test_inpaint_changes_only_the_white_part_of_the_mask(http: httpx.AsyncClient) -> None:
    image_id, mask_id = str(uuid.uuid4()), str(uuid.uuid4())
    await upload(http, "safelight-base.png", png((200, 180, 20), size=(48, 32)))
    mask = Image.new("L", (48, 32), 0)
    mask.paste(255, (0, 0, 24, 32))  # the left half is repainted
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    await upload(http, "safelight-mask.png", buffer.getvalue())
    params = {**BASE, "image": image_id, "mask": mask_id, "prompt": "a window"}
    files = {image_id: "safelight-base.png", mask_id: "safelight-mask.png"}
    result = await _result(http, "inpaint", params, files)
    assert result.size == (48, 32)
    assert result.getpixel((40, 16)) == (200, 180, 20)
    assert result.getpixel((8, 16)) != (200, 180, 20)


@pytest.mark.parametrize(("factor", "size"), [(2.0, (100, 60)), (1.5, (75, 45)), (4.0, (200, 120))])
async def test_upscale_multiplies_the_size(http: httpx.AsyncClient, factor: float, size: tuple[int, int]) -> None:
    image_id = str(uuid.uuid4())
    await upload(http, "safelight-small.png", png((1, 2, 3), size=(50, 30)))
    result = await _result(http, "upscale", {"image": image_id, "factor": factor}, {image_id: "safelight-small.png"})
    assert result.size == size


async def test_a_template_without_its_upload_fails_validation(http: httpx.AsyncClient) -> None:
    template = load_templates()["upscale"]
    image_id = str(uuid.uuid4())
    workflow = build_workflow(
        template,
        validate_params(template, {"image": image_id}),
        filename_prefix="x",
        input_files={image_id: "safelight-never-uploaded.png"},
    )
    answer = await http.post("/prompt", json={"prompt": workflow})
    assert answer.status_code == 400
    (error,) = answer.json()["node_errors"]["1"]["errors"]
    assert error["details"] == "image - Invalid image file: safelight-never-uploaded.png"
