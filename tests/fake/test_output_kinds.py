"""Every output kind in history as upstream nodes report it, with real bytes behind `/view`: PNG with
`prompt`/`workflow` chunks (SaveImage), animated WEBP (`images` + `animated`), VideoHelperSuite's `gifs`,
text (PreviewAny) and FLAC audio (SaveAudio); and scaling that follows the input's size."""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.fake.replay import wait_history
from tests.fake.test_uploads import png, upload
from tests.fake.test_validation import txt2img


def frames(count: int = 3, **save: Any) -> dict[str, Any]:
    """`count` different 48x32 renders (a txt2img batch) into node "9", whose class the caller sets."""
    prompt = txt2img(**{"5__batch_size": count, "5__width": 48, "5__height": 32})
    prompt["9"] = {"class_type": "", "inputs": {"images": ["8", 0], **save}}
    return prompt


async def run(http: httpx.AsyncClient, prompt: dict[str, Any], **body: Any) -> dict[str, Any]:
    answer = await http.post("/prompt", json={"prompt": prompt, **body})
    assert answer.status_code == 200, answer.text
    entry = await wait_history(http, answer.json()["prompt_id"])
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry


async def view(http: httpx.AsyncClient, item: dict[str, Any]) -> httpx.Response:
    got = await http.get("/view", params={key: item[key] for key in ("filename", "subfolder", "type")})
    assert got.status_code == 200
    return got


async def test_save_image_embeds_prompt_and_workflow(http: httpx.AsyncClient) -> None:
    workflow = {"last_node_id": 9, "nodes": [{"id": 9, "type": "SaveImage"}], "links": []}
    prompt = txt2img()
    entry = await run(http, prompt, extra_data={"extra_pnginfo": {"workflow": workflow}})
    (item,) = entry["outputs"]["9"]["images"]
    image = Image.open(io.BytesIO((await view(http, item)).content))
    assert json.loads(image.text["workflow"]) == workflow
    embedded = json.loads(image.text["prompt"])
    assert embedded["6"]["inputs"]["text"] == prompt["6"]["inputs"]["text"]
    assert list(image.text) == ["prompt", "workflow"]
    # Without extra_pnginfo (an API client), the prompt alone.
    bare = await run(http, txt2img(**{"3__seed": 7}))
    image = Image.open(io.BytesIO((await view(http, bare["outputs"]["9"]["images"][0])).content))
    assert list(image.text) == ["prompt"]


async def test_animated_webp_is_images_plus_animated(http: httpx.AsyncClient) -> None:
    prompt = frames(4, filename_prefix="anim", fps=8.0, lossless=False, quality=70, method="fastest")
    prompt["9"]["class_type"] = "SaveAnimatedWEBP"
    entry = await run(http, prompt)
    output = entry["outputs"]["9"]
    assert output == {
        "images": [{"filename": "anim_00001_.webp", "subfolder": "", "type": "output"}],
        "animated": [True],
    }
    got = await view(http, output["images"][0])
    assert got.headers["content-type"] == "image/webp"
    webp = Image.open(io.BytesIO(got.content))
    assert (webp.format, webp.size, webp.n_frames, webp.is_animated) == ("WEBP", (48, 32), 4, True)
    webp.load()
    assert webp.info["duration"] == 125
    assert json.loads(webp.getexif()[0x0110].removeprefix("prompt:"))["9"]["class_type"] == "SaveAnimatedWEBP"


@pytest.mark.parametrize(("video_format", "pil_format"), [("image/gif", "GIF"), ("image/webp", "WEBP")])
async def test_video_combine_reports_gifs(http: httpx.AsyncClient, video_format: str, pil_format: str) -> None:
    prompt = frames(
        3,
        frame_rate=10,
        loop_count=0,
        filename_prefix="AnimateDiff",
        format=video_format,
        pingpong=True,
        save_output=True,
    )
    prompt["9"]["class_type"] = "VHS_VideoCombine"
    entry = await run(http, prompt)
    (gif,) = entry["outputs"]["9"]["gifs"]
    ext = video_format.split("/")[1]
    assert {key: value for key, value in gif.items() if key != "fullpath"} == {
        "filename": f"AnimateDiff_00001.{ext}",
        "subfolder": "",
        "type": "output",
        "format": video_format,
        "frame_rate": 10.0,
        "workflow": "AnimateDiff_00001.png",
    }
    assert gif["fullpath"].endswith(f"/output/AnimateDiff_00001.{ext}")
    got = await view(http, gif)
    assert got.headers["content-type"] == video_format
    animation = Image.open(io.BytesIO(got.content))
    assert (animation.format, animation.n_frames) == (pil_format, 4)  # 3 frames ping-ponged: 0 1 2 1
    first = Image.open(io.BytesIO((await view(http, {**gif, "filename": gif["workflow"]})).content))
    assert "prompt" in first.text


async def test_preview_any_reports_text(http: httpx.AsyncClient) -> None:
    prompt = {
        "1": {"class_type": "PrimitiveString", "inputs": {"value": "héllo, wörld"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": 12}},
    }
    entry = await run(http, prompt)
    assert entry["outputs"] == {"2": {"text": ["héllo, wörld"]}, "3": {"text": ["12"]}}


def _flac_info(data: bytes) -> tuple[int, int, int, int]:
    """(sample rate, channels, bits per sample, total samples) from the STREAMINFO block, after checking every
    frame's CRC-16 (polynomial 0x8005) and its sync code."""
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0
    length = int.from_bytes(data[5:8], "big")
    (packed,) = struct.unpack(">Q", data[18:26])
    rate, channels, bits, total = (
        packed >> 44,
        ((packed >> 41) & 7) + 1,
        ((packed >> 36) & 31) + 1,
        packed & (2**36 - 1),
    )
    offset, frame_size, decoded = 8 + length, None, 0
    while offset < len(data):
        assert data[offset : offset + 2] == b"\xff\xf8"
        header_end = offset + 4
        while data[header_end] & 0xC0 == 0x80 or header_end == offset + 4:
            header_end += 1  # the UTF-8 frame number
        block = int.from_bytes(data[header_end : header_end + 2], "big") + 1
        frame_size = header_end + 2 + 1 + 1 + 2 * block + 2 - offset
        frame = data[offset : offset + frame_size]
        crc = 0
        for byte in frame[:-2]:
            crc ^= byte << 8
            for _ in range(8):
                crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        assert crc == int.from_bytes(frame[-2:], "big")
        decoded += block
        offset += frame_size
    assert decoded == total
    return rate, channels, bits, total


async def test_save_audio_writes_flac(http: httpx.AsyncClient) -> None:
    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dreamshaper_8.safetensors"}},
        "1": {"class_type": "EmptyLatentAudio", "inputs": {"seconds": 1.2, "batch_size": 2}},
        "2": {"class_type": "VAEDecodeAudio", "inputs": {"samples": ["1", 0], "vae": ["4", 2]}},
        "3": {"class_type": "SaveAudio", "inputs": {"audio": ["2", 0], "filename_prefix": "audio/clip_%batch_num%"}},
    }
    entry = await run(http, prompt)
    items = entry["outputs"]["3"]["audio"]
    assert items == [
        {"filename": "clip_0_00001_.flac", "subfolder": "audio", "type": "output"},
        {"filename": "clip_1_00002_.flac", "subfolder": "audio", "type": "output"},
    ]
    got = await view(http, items[0])
    assert got.headers["content-type"] == "audio/flac"
    assert _flac_info(got.content) == (8000, 1, 16, 9600)


async def _size_after(http: httpx.AsyncClient, scaler: dict[str, Any]) -> tuple[int, int]:
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
        "2": {**scaler, "inputs": {"image": ["1", 0], **scaler["inputs"]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "scaled"}},
    }
    entry = await run(http, prompt)
    (item,) = entry["outputs"]["9"]["images"]
    size: tuple[int, int] = Image.open(io.BytesIO((await view(http, item)).content)).size
    return size


async def test_scaling_follows_the_input_size(http: httpx.AsyncClient) -> None:
    await upload(http, "in.png", png((1, 2, 3), size=(60, 40)))
    by = {"class_type": "ImageScaleBy", "inputs": {"upscale_method": "lanczos", "scale_by": 2.0}}
    assert await _size_after(http, by) == (120, 80)
    to = {"upscale_method": "bilinear", "width": 30, "height": 0, "crop": "disabled"}
    assert await _size_after(http, {"class_type": "ImageScale", "inputs": to}) == (30, 20)
    centred = {"upscale_method": "area", "width": 16, "height": 16, "crop": "center"}
    assert await _size_after(http, {"class_type": "ImageScale", "inputs": centred}) == (16, 16)


async def test_upscale_models_are_offered_only_when_configured(http: httpx.AsyncClient) -> None:
    await upload(http, "in.png", png((1, 2, 3), size=(10, 6)))
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
        "5": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "RealESRGAN_x2plus.pth"}},
        "2": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["5", 0], "image": ["1", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "up"}},
    }
    refused = await http.post("/prompt", json={"prompt": prompt})
    assert refused.status_code == 400
    (error,) = refused.json()["node_errors"]["5"]["errors"]
    assert (error["type"], error["details"]) == ("value_not_in_list", "model_name: 'RealESRGAN_x2plus.pth' not in []")
    assert (await http.get("/models/upscale_models")).json() == []
    changed = await http.post("/_fake/config", json={"upscale_models": ["RealESRGAN_x2plus.pth"]})
    assert changed.status_code == 200
    assert (await http.get("/models/upscale_models")).json() == ["RealESRGAN_x2plus.pth"]
    entry = await run(http, prompt)
    (item,) = entry["outputs"]["9"]["images"]
    assert Image.open(io.BytesIO((await view(http, item)).content)).size == (20, 12)


async def test_img2img_keeps_the_source_size_and_denoise_zero_keeps_it(http: httpx.AsyncClient) -> None:
    await upload(http, "src.png", png((90, 60, 30), size=(44, 30)))
    prompt = txt2img(**{"3__denoise": 0.0})
    del prompt["5"]
    prompt["1"] = {"class_type": "LoadImage", "inputs": {"image": "src.png"}}
    prompt["11"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["1", 0], "vae": ["4", 2]}}
    prompt["3"]["inputs"]["latent_image"] = ["11", 0]
    entry = await run(http, prompt)
    (item,) = entry["outputs"]["9"]["images"]
    image = Image.open(io.BytesIO((await view(http, item)).content))
    assert image.size == (40, 24)  # VAEEncode crops to multiples of 8
    assert image.getpixel((5, 5)) == (90, 60, 30)


async def test_batch_num_names_each_image_of_a_batch(http: httpx.AsyncClient) -> None:
    entry = await run(http, txt2img(**{"5__batch_size": 2, "9__filename_prefix": "b_%batch_num%"}))
    names = [item["filename"] for item in entry["outputs"]["9"]["images"]]
    assert names == ["b_0_00001_.png", "b_1_00002_.png"]
