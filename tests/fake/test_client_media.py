"""The product's ComfyClient against the fake: input delivery (HEAD check, upload once, mask upload) and every
output kind parsed from history and fetched with `/view`, as the worker does it."""

from __future__ import annotations

import asyncio
import io
import json
import uuid

import httpx
from PIL import Image

from comfy.client import ComfyClient, HistoryEntry
from comfy.fake.server import FakeHandle
from tests.fake.test_output_kinds import frames
from tests.fake.test_uploads import png


async def _finished(client: ComfyClient, prompt_id: str) -> HistoryEntry:
    async def poll() -> HistoryEntry:
        while True:
            entry = await client.history(prompt_id)
            if entry is not None:
                return entry
            await asyncio.sleep(0.01)

    return await asyncio.wait_for(poll(), 10)


async def test_an_input_is_uploaded_once_and_checked_with_head(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    data = png((12, 34, 56), size=(32, 16))
    async with ComfyClient(comfy.url, timeout=10) as client:
        for _ in range(3):
            if not await client.has_input("safelight-0123.png"):
                assert await client.upload_image("safelight-0123.png", data) == "safelight-0123.png"
        mask = Image.new("RGBA", (32, 16), (0, 0, 0, 0))
        buffer = io.BytesIO()
        mask.save(buffer, format="PNG")
        ref = {"filename": "safelight-0123.png", "subfolder": "", "type": "input"}
        assert await client.upload_mask("safelight-0123-mask.png", buffer.getvalue(), ref) == "safelight-0123-mask.png"
        assert await client.has_input("safelight-0123-mask.png")
    stats = (await http.get("/_fake/stats")).json()
    assert stats["uploads"] == {"safelight-0123.png": 1, "safelight-0123-mask.png": 1}
    heads = (await http.get("/view", params={"filename": "safelight-0123-mask.png", "type": "input"})).content
    assert Image.open(io.BytesIO(heads)).getpixel((0, 0)) == (12, 34, 56, 0)


async def test_every_output_kind_reaches_the_client(comfy: FakeHandle) -> None:
    prompt = frames(2, filename_prefix="anim", fps=4.0, lossless=True, quality=80, method="default")
    prompt["9"]["class_type"] = "SaveAnimatedWEBP"
    prompt["20"] = {"class_type": "PreviewAny", "inputs": {"source": "a caption"}}
    prompt["21"] = {"class_type": "EmptyLatentAudio", "inputs": {"seconds": 1.0, "batch_size": 1}}
    prompt["22"] = {"class_type": "VAEDecodeAudio", "inputs": {"samples": ["21", 0], "vae": ["4", 2]}}
    prompt["23"] = {"class_type": "SaveAudio", "inputs": {"audio": ["22", 0], "filename_prefix": "audio/a"}}
    prompt["24"] = {
        "class_type": "VHS_VideoCombine",
        "inputs": {
            "images": ["8", 0],
            "frame_rate": 8,
            "loop_count": 0,
            "filename_prefix": "vid",
            "format": "image/gif",
            "pingpong": False,
            "save_output": True,
        },
    }
    prompt["25"] = {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "still"}}
    async with ComfyClient(comfy.url, timeout=10) as client:
        prompt_id = str(uuid.uuid4())
        await client.submit(prompt, prompt_id=prompt_id, client_id=uuid.uuid4().hex)
        entry = await _finished(client, prompt_id)
        assert entry.succeeded
        kinds = sorted((output.node, output.kind, output.batch_index) for output in entry.outputs)
        assert kinds == [
            ("20", "text", 0),
            ("23", "audio", 0),
            ("24", "animation", 0),
            ("25", "image", 0),
            ("25", "image", 1),
            ("9", "animation", 0),
        ]
        by_node = {(output.node, output.batch_index): output for output in entry.outputs}
        assert by_node["20", 0].text == "a caption"
        assert (await client.view(by_node["23", 0]))[:4] == b"fLaC"
        assert (await client.view(by_node["24", 0]))[:6] == b"GIF89a"
        assert Image.open(io.BytesIO(await client.view(by_node["9", 0]))).n_frames == 2
        still = Image.open(io.BytesIO(await client.view(by_node["25", 1])))
        # The client sends no `extra_pnginfo`: the PNG carries the API prompt, which ComfyUI's editor opens too.
        assert set(still.text) == {"prompt"}
        assert json.loads(still.text["prompt"])["25"]["class_type"] == "SaveImage"
