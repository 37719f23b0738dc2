"""`POST /upload/image`, `/upload/mask`, `/view?type=input` and the loaders that read uploads, against what
upstream ComfyUI 0.3.64's server.py and nodes.py do (no recording has an upload)."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pytest
from PIL import Image

from comfy.fake import asgi, media_nodes
from comfy.fake.server import FakeHandle
from tests.fake.replay import wait_history


def png(color: tuple[int, ...], size: tuple[int, int] = (24, 16), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


async def upload(
    http: httpx.AsyncClient, name: str, data: bytes, path: str = "/upload/image", **fields: str
) -> httpx.Response:
    return await http.post(path, files={"image": (name, data, "image/png")}, data=fields)


async def stats(http: httpx.AsyncClient) -> dict[str, Any]:
    answer: dict[str, Any] = (await http.get("/_fake/stats")).json()
    return answer


def load_and_save(image: str, *, node: str = "LoadImage", **extra: Any) -> dict[str, Any]:
    """A loader whose IMAGE (or MASK, through an inversion to keep the graph small) is saved."""
    inputs: dict[str, Any] = {"image": image, **extra}
    return {
        "1": {"class_type": node, "inputs": inputs},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "up"}},
    }


async def test_upload_answers_name_subfolder_type_and_view_serves_it(http: httpx.AsyncClient) -> None:
    data = png((200, 10, 10))
    answer = await upload(http, "red.png", data)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert answer.json() == {"name": "red.png", "subfolder": "", "type": "input"}
    got = await http.get("/view", params={"filename": "red.png", "type": "input"})
    assert (got.status_code, got.content, got.headers["content-type"]) == (200, data, "image/png")
    assert got.headers["content-disposition"] == 'filename="red.png"'
    head = await http.head("/view", params={"filename": "red.png", "type": "input"})
    assert (head.status_code, head.content) == (200, b"")
    assert int(head.headers["content-length"]) == len(data)
    for missing in ({"filename": "nope.png", "type": "input"}, {"filename": "red.png", "type": "output"}):
        assert (await http.get("/view", params=missing)).status_code == 404
        assert (await http.head("/view", params=missing)).status_code == 404


async def test_same_content_is_a_duplicate_other_content_is_renamed(http: httpx.AsyncClient) -> None:
    first, other = png((1, 2, 3)), png((9, 9, 9))
    assert (await upload(http, "pic.png", first)).json()["name"] == "pic.png"
    assert (await upload(http, "pic.png", first)).json()["name"] == "pic.png"
    assert (await upload(http, "pic.png", other)).json()["name"] == "pic (1).png"
    assert (await upload(http, "pic.png", png((7, 7, 7)))).json()["name"] == "pic (2).png"
    assert (await upload(http, "pic.png", other)).json()["name"] == "pic (1).png"
    counts = await stats(http)
    assert counts["uploads"] == {"pic.png": 5}
    assert counts["upload_writes"] == {"pic.png": 1, "pic (1).png": 1, "pic (2).png": 1}
    assert (await http.get("/view", params={"filename": "pic (1).png", "type": "input"})).content == other


async def test_overwrite_replaces_the_file_under_its_name(http: httpx.AsyncClient) -> None:
    await upload(http, "o.png", png((1, 1, 1)))
    replaced = png((2, 2, 2))
    for flag in ("true", "1"):
        answer = await upload(http, "o.png", replaced, overwrite=flag)
        assert answer.json() == {"name": "o.png", "subfolder": "", "type": "input"}
    assert (await http.get("/view", params={"filename": "o.png", "type": "input"})).content == replaced
    assert (await upload(http, "o.png", png((3, 3, 3)), overwrite="false")).json()["name"] == "o (1).png"
    assert (await stats(http))["upload_writes"]["o.png"] == 3  # overwrite writes even identical bytes


async def test_subfolder_and_type_place_the_file(http: httpx.AsyncClient) -> None:
    data = png((5, 6, 7))
    answer = await upload(http, "s.png", data, subfolder="clip", type="temp")
    assert answer.json() == {"name": "s.png", "subfolder": "clip", "type": "temp"}
    assert (await http.get("/view", params={"filename": "s.png", "subfolder": "clip", "type": "temp"})).content == data
    assert (await http.get("/view", params={"filename": "s.png", "type": "temp"})).status_code == 404
    assert (await http.get("/view", params={"filename": "s.png [temp]", "subfolder": "clip"})).content == data


@pytest.mark.parametrize(
    ("name", "fields"),
    [("../evil.png", {}), ("x.png", {"subfolder": "../../etc"}), ("../../x.png", {"subfolder": "a"})],
)
async def test_paths_leaving_the_folder_are_400(http: httpx.AsyncClient, name: str, fields: dict[str, str]) -> None:
    answer = await upload(http, name, png((0, 0, 0)), **fields)
    assert answer.status_code == 400
    assert (await stats(http))["upload_writes"] == {}


async def test_no_image_field_is_400_and_a_plain_field_500(http: httpx.AsyncClient) -> None:
    assert (await http.post("/upload/image", data={"overwrite": "true"})).status_code == 400
    assert (await http.post("/upload/image", json={"image": "x"})).status_code == 400
    assert (await http.post("/upload/image", data={"image": "x.png"})).status_code == 500
    assert (await upload(http, "t.png", png((1, 1, 1)), type="models")).status_code == 500
    # aiohttp hands a part without a file name over as bytes, whose missing `.file` fails the same way.
    assert (await upload(http, "", png((1, 1, 1)))).status_code == 500


async def test_a_body_over_the_limit_is_413_and_stores_nothing(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    comfy.config.max_upload_bytes = 1000
    answer = await upload(http, "big.png", png((1, 2, 3), size=(400, 400), mode="RGB") + b"\0" * 2000)
    assert answer.status_code == 413
    assert answer.text.startswith("Maximum request body size 1000 exceeded, actual body size ")
    assert (await http.get("/view", params={"filename": "big.png", "type": "input"})).status_code == 404
    assert (await upload(http, "small.png", b"x" * 10)).status_code == 200


async def test_object_info_lists_the_input_folder(http: httpx.AsyncClient) -> None:
    for name in ("b.png", "a.jpg", "notes.txt"):
        await upload(http, name, png((1, 1, 1)))
    await upload(http, "deep.png", png((1, 1, 1)), subfolder="sub")
    info = (await http.get("/object_info/LoadImage")).json()["LoadImage"]
    assert info["input"]["required"]["image"] == [["a.jpg", "b.png"], {"image_upload": True}]
    assert info["output"] == ["IMAGE", "MASK"]
    whole = (await http.get("/object_info")).json()
    assert whole["LoadImageMask"]["input"]["required"]["image"][0] == ["a.jpg", "b.png", "notes.txt"]
    assert whole["UpscaleModelLoader"]["input"]["required"]["model_name"] == [[]]


async def test_a_missing_file_fails_validation_like_upstream(http: httpx.AsyncClient) -> None:
    answer = await http.post("/prompt", json={"prompt": load_and_save("ghost.png")})
    assert answer.status_code == 400
    error = {
        "type": "custom_validation_failed",
        "message": "Custom validation failed for node",
        "details": "image - Invalid image file: ghost.png",
        "extra_info": {"input_name": "image"},
    }
    assert answer.json() == {
        "error": {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": "",  # upstream lists only the output node's own errors here: SaveImage has none
            "extra_info": {},
        },
        "node_errors": {"1": {"errors": [error], "dependent_outputs": ["2"], "class_type": "LoadImage"}},
    }


def inpaint(image: str, denoise: float = 1.0) -> dict[str, Any]:
    """LoadImage's IMAGE encoded, its MASK as the latent's noise mask, sampled, decoded and saved."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dreamshaper_8.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red door", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "10": {"class_type": "VAEEncode", "inputs": {"pixels": ["1", 0], "vae": ["4", 2]}},
        "11": {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["10", 0], "mask": ["1", 1]}},
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["4", 0], "seed": 1, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
                "scheduler": "normal", "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["11", 0],
                "denoise": denoise,
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "inpaint"}},
    }  # fmt: skip


async def test_load_image_reads_the_upload_and_its_alpha_as_mask(http: httpx.AsyncClient) -> None:
    """Upstream's MASK is 1 - alpha: only the transparent half is repainted."""
    half = Image.new("RGBA", (16, 8), (10, 200, 30, 255))
    half.paste((10, 200, 30, 0), (0, 0, 8, 8))
    buffer = io.BytesIO()
    half.save(buffer, format="PNG")
    await upload(http, "half.png", buffer.getvalue())
    answer = await http.post("/prompt", json={"prompt": inpaint("half.png")})
    assert answer.status_code == 200, answer.text
    entry = await wait_history(http, answer.json()["prompt_id"])
    assert entry["status"]["status_str"] == "success"
    (saved,) = entry["outputs"]["9"]["images"]
    image = Image.open(io.BytesIO((await http.get("/view", params=saved)).content))
    assert (image.size, image.mode) == ((16, 8), "RGB")
    assert image.getpixel((12, 4)) == (10, 200, 30)
    assert image.getpixel((3, 4)) != (10, 200, 30)


async def test_load_image_mask_channels(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    await upload(http, "m.png", png((255, 0, 0, 64), size=(8, 8), mode="RGBA"))
    prompt = {
        "1": {"class_type": "LoadImageMask", "inputs": {"image": "m.png", "channel": "red"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    answer = await http.post("/prompt", json={"prompt": prompt})
    assert answer.status_code == 200, answer.text
    assert (await wait_history(http, answer.json()["prompt_id"]))["status"]["status_str"] == "success"
    bad = await http.post(
        "/prompt", json={"prompt": {**prompt, "1": {**prompt["1"], "inputs": {"image": "m.png", "channel": "pink"}}}}
    )
    assert bad.json()["node_errors"]["1"]["errors"][0]["type"] == "value_not_in_list"


async def test_mask_upload_puts_the_mask_alpha_on_the_original(http: httpx.AsyncClient) -> None:
    original = Image.new("RGB", (8, 8), (40, 80, 120))
    buffer = io.BytesIO()
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("prompt", '{"1": {}}')
    original.save(buffer, format="PNG", pnginfo=info)
    await upload(http, "orig.png", buffer.getvalue())
    mask = Image.new("RGBA", (8, 8), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 4, 8))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    ref = json.dumps({"filename": "orig.png", "subfolder": "", "type": "input"})
    answer = await upload(http, "clipspace-mask.png", buffer.getvalue(), "/upload/mask", original_ref=ref)
    assert answer.json() == {"name": "clipspace-mask.png", "subfolder": "", "type": "input"}
    stored = (await http.get("/view", params={"filename": "clipspace-mask.png", "type": "input"})).content
    composited = Image.open(io.BytesIO(stored))
    assert composited.mode == "RGBA"
    assert composited.getpixel((1, 1)) == (40, 80, 120, 0)
    assert composited.getpixel((6, 1)) == (40, 80, 120, 255)
    assert composited.text == {"prompt": '{"1": {}}'}
    # An original that does not exist, or a path outside the folders: 200 with the name, nothing written.
    for bad in ({"filename": "none.png", "type": "input"}, {"filename": "../orig.png", "type": "input"}):
        answer = await upload(http, "m2.png", buffer.getvalue(), "/upload/mask", original_ref=json.dumps(bad))
        assert answer.json()["name"] == "m2.png"
        assert (await http.get("/view", params={"filename": "m2.png", "type": "input"})).status_code == 404
    assert (await upload(http, "m3.png", buffer.getvalue(), "/upload/mask")).status_code == 500
    assert (await stats(http))["uploads"]["m2.png"] == 2


async def test_a_reupload_under_the_same_name_runs_the_loader_again(http: httpx.AsyncClient) -> None:
    """Upstream's IS_CHANGED hashes the file: new bytes under the same name are not served from the cache."""
    await upload(http, "same.png", png((10, 10, 10)))
    first = await wait_history(
        http, (await http.post("/prompt", json={"prompt": load_and_save("same.png")})).json()["prompt_id"]
    )
    await upload(http, "same.png", png((250, 250, 250)), overwrite="true")
    second = await wait_history(
        http, (await http.post("/prompt", json={"prompt": load_and_save("same.png")})).json()["prompt_id"]
    )
    views = []
    for entry in (first, second):
        (saved,) = entry["outputs"]["2"]["images"]
        views.append(Image.open(io.BytesIO((await http.get("/view", params=saved)).content)).getpixel((0, 0)))
    assert views == [(10, 10, 10), (250, 250, 250)]


async def test_the_server_refuses_any_body_past_its_own_ceiling(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below every route's limit, the fake's server bounds what a request can cost before a route sees it."""
    monkeypatch.setattr(asgi, "_MAX_BODY", 1000)
    answer = await http.post("/prompt", content=b"{" + b" " * 5000 + b"}")
    assert answer.status_code == 413
    assert (await http.get("/prompt")).status_code == 200  # a new connection is served as before


async def test_a_loader_refuses_an_image_past_the_pixel_bound(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(media_nodes, "MAX_IMAGE_PIXELS", 100)
    await upload(http, "wide.png", png((1, 1, 1), size=(20, 20)))
    answer = await http.post("/prompt", json={"prompt": load_and_save("wide.png")})
    entry = await wait_history(http, answer.json()["prompt_id"])
    assert entry["status"]["status_str"] == "error"
    (error,) = [data for kind, data in entry["status"]["messages"] if kind == "execution_error"]
    assert (error["node_type"], error["exception_type"]) == ("LoadImage", "OutOfMemoryError")
