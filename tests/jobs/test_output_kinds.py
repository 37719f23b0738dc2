"""Outputs of every kind, end to end: a worker runs workflows with animation, text, audio and batch outputs on
the fake ComfyUI; each arrives stored with its real mime type, kind, measures, batch index and seed, in the
generation's images and in its IMAGE events, and a PNG downloads byte for byte as ComfyUI wrote it."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.images import images_for_generations
from settings import Settings
from tests.stack import GraphQLClient, ended, new_user_client, running_worker, serve

RAW = """mutation($workflow: JSON!) { createWorkflowGeneration(workflow: $workflow) {
  __typename
  ... on GenerationPayload { generation { id seedUsed } }
  ... on ValidationError { errors { field message } }
} }"""
OUTPUT_FIELDS = """index kind mime batchIndex width height frames durationSeconds text url downloadUrl thumbnailUrl
  seedValue sizeBytes"""
IMAGES = f"""query($id: ID!) {{ generation(id: $id) {{ status error {{ code message node }}
  images {{ {OUTPUT_FIELDS} }} }} }}"""
EVENTS = f"""subscription($id: ID!) {{ generationEvents(id: $id, after: 0) {{
  kind image {{ {OUTPUT_FIELDS} }} }} }}"""
PROMPT_ID = "query($id: ID!) { generation(id: $id) { promptId } }"
SEED = 4242
# Output nodes (and what feeds them) that the raw-workflow allowlist does not hold by default.
MEDIA_NODES = ("SaveAnimatedWEBP", "PrimitiveString", "PreviewAny", "EmptyLatentAudio", "VAEDecodeAudio", "SaveAudio",
               "VHS_VideoCombine")  # fmt: skip


def _images(batch: int, save: dict[str, Any]) -> dict[str, Any]:
    """txt2img nodes rendering `batch` 48x32 images into node "9" (`save`: its class and inputs)."""
    clip = ["4", 1]
    sampler = {
        "model": ["4", 0], "seed": SEED, "steps": 2, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
        "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0], "denoise": 1.0,
    }  # fmt: skip
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dreamshaper_8.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk", "clip": clip}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": clip}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 48, "height": 32, "batch_size": batch}},
        "3": {"class_type": "KSampler", "inputs": sampler},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": save["class_type"], "inputs": {"images": ["8", 0], **save["inputs"]}},
    }


@asynccontextmanager
async def _stack(stack_settings: Settings, **changes: Any) -> AsyncIterator[str]:
    """An API and a worker of their own (namespace and all) whose raw-workflow allowlist has the media nodes."""
    settings = stack_settings.model_copy(
        update={
            "namespace": f"outputs-{uuid.uuid4().hex[:8]}",
            "raw_node_classes": (*stack_settings.raw_node_classes, *MEDIA_NODES),
            **changes,
        }
    )
    from graph.app import create_app

    async with serve(create_app(settings)) as url, running_worker(settings):
        yield url


@pytest.fixture(scope="module")
async def media_stack(stack_settings: Settings) -> AsyncIterator[str]:
    async with _stack(stack_settings) as url:
        yield url


@pytest.fixture
async def admin(media_stack: str, session_factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[GraphQLClient]:
    client = await new_user_client(media_stack, session_factory, admin=True)
    yield client
    await client.aclose()


async def _finish(client: GraphQLClient, workflow: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Run a raw workflow to its end: its id and the generation as it ended."""
    created = (await client.query(RAW, {"workflow": workflow}))["createWorkflowGeneration"]
    assert created["__typename"] == "GenerationPayload", created
    gid = created["generation"]["id"]
    assert created["generation"]["seedUsed"] == SEED
    return gid, await ended(client, IMAGES, gid)


async def _run(client: GraphQLClient, workflow: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Run a raw workflow to SUCCEEDED: its id and its outputs (as the generation lists them)."""
    gid, generation = await _finish(client, workflow)
    assert generation["status"] == "SUCCEEDED", generation["error"]
    images: list[dict[str, Any]] = generation["images"]
    return gid, images


async def _image_events(client: GraphQLClient, gid: str) -> list[dict[str, Any]]:
    async with client.subscription(EVENTS, {"id": gid}) as events:
        return [e["generationEvents"]["image"] for e in await events.collect() if e["generationEvents"]["image"]]


async def test_animation_video_combine_text_and_audio_arrive_with_their_kind_and_mime(admin: GraphQLClient) -> None:
    workflow = _images(3, {"class_type": "SaveAnimatedWEBP",
                           "inputs": {"filename_prefix": "anim", "fps": 8.0, "lossless": False, "quality": 70,
                                      "method": "fastest"}})  # fmt: skip
    workflow |= {
        "40": {"class_type": "VHS_VideoCombine", "inputs": {
            "images": ["8", 0], "frame_rate": 10, "loop_count": 0, "filename_prefix": "combined",
            "format": "image/gif", "pingpong": False, "save_output": True}},
        "20": {"class_type": "PrimitiveString", "inputs": {"value": "héllo, wörld"}},
        "21": {"class_type": "PreviewAny", "inputs": {"source": ["20", 0]}},
        "30": {"class_type": "EmptyLatentAudio", "inputs": {"seconds": 1.0, "batch_size": 1}},
        "31": {"class_type": "VAEDecodeAudio", "inputs": {"samples": ["30", 0], "vae": ["4", 2]}},
        "32": {"class_type": "SaveAudio", "inputs": {"audio": ["31", 0], "filename_prefix": "audio/clip"}},
    }  # fmt: skip
    gid, outputs = await _run(admin, workflow)
    assert [o["index"] for o in outputs] == [0, 1, 2, 3]
    by_mime = {o["mime"]: o for o in outputs}
    assert sorted(by_mime) == ["audio/flac", "image/gif", "image/webp", "text/plain"]

    webp = by_mime["image/webp"]
    assert (webp["kind"], webp["width"], webp["height"], webp["frames"]) == ("ANIMATION", 48, 32, 3)
    assert webp["durationSeconds"] == pytest.approx(3 * 0.125)  # 8 fps
    gif = by_mime["image/gif"]
    assert (gif["kind"], gif["width"], gif["height"], gif["frames"]) == ("ANIMATION", 48, 32, 3)
    assert gif["durationSeconds"] == pytest.approx(3 * 0.1)  # 10 fps
    text = by_mime["text/plain"]
    assert (text["kind"], text["text"], text["width"], text["thumbnailUrl"]) == ("TEXT", "héllo, wörld", None, None)
    audio = by_mime["audio/flac"]
    assert (audio["kind"], audio["width"], audio["height"], audio["frames"]) == ("AUDIO", None, None, None)
    assert audio["thumbnailUrl"] is None and audio["text"] is None
    for output in outputs:
        assert (output["seedValue"], output["batchIndex"]) == (SEED, 0)

    async with httpx.AsyncClient() as http:
        for output in outputs:
            served = await http.get(output["url"])
            assert served.status_code == 200 and len(served.content) == output["sizeBytes"]
            assert served.headers["content-type"].split(";")[0] == output["mime"]
            assert served.headers["x-content-type-options"] == "nosniff"
            if output["thumbnailUrl"] is not None:
                thumb = await http.get(output["thumbnailUrl"])
                assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
        assert (await http.get(text["url"])).text == "héllo, wörld"
        assert (await http.get(text["url"])).headers["content-type"] == "text/plain; charset=utf-8"
        assert (await http.get(webp["url"].replace("/images/", "/thumbs/256/"))).status_code == 200
        assert (await http.get(audio["url"].replace("/images/", "/thumbs/256/"))).status_code == 404
        with Image.open(io.BytesIO((await http.get(webp["url"])).content)) as animation:
            assert (animation.format, animation.n_frames) == ("WEBP", 3)

    # The IMAGE events say the same as the generation's rows.
    assert await _image_events(admin, gid) == outputs


async def test_each_output_of_a_batch_says_its_seed_and_batch_index_and_png_metadata_survives(
    admin: GraphQLClient, fake: Any, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    gid, outputs = await _run(admin, _images(3, {"class_type": "SaveImage", "inputs": {"filename_prefix": "batch"}}))
    assert [(o["index"], o["batchIndex"], o["seedValue"]) for o in outputs] == [(0, 0, SEED), (1, 1, SEED),
                                                                                (2, 2, SEED)]  # fmt: skip
    assert {(o["kind"], o["mime"], o["width"], o["height"], o["frames"]) for o in outputs} == {
        ("IMAGE", "image/png", 48, 32, None)
    }
    assert len({o["url"] for o in outputs}) == 3
    async with session_factory() as session:
        rows = (await images_for_generations(session, generation_ids=[uuid.UUID(gid)]))[uuid.UUID(gid)]
    assert [(row.node_id, row.batch_index) for row in rows] == [("9", 0), ("9", 1), ("9", 2)]
    prompt_id = (await admin.query(PROMPT_ID, {"id": gid}))["generation"]["promptId"]
    async with httpx.AsyncClient() as http:
        # What ComfyUI wrote, as its /view serves it, against what Safelight's download serves.
        saved = (await http.get(f"{fake.url}/history/{prompt_id}")).json()[prompt_id]["outputs"]["9"]["images"]
        assert [item["filename"] for item in saved] == [row.filename for row in rows]
        for output, item in zip(outputs, saved, strict=True):
            written = await http.get(f"{fake.url}/view", params={k: item[k] for k in ("filename", "subfolder", "type")})
            assert written.status_code == 200
            downloaded = await http.get(output["downloadUrl"])
            assert downloaded.status_code == 200
            assert downloaded.content == written.content, "the PNG was changed on its way through Safelight"
            with Image.open(io.BytesIO(downloaded.content)) as png:
                assert '"KSampler"' in png.text["prompt"]  # ComfyUI's API-format prompt, as it ran
    assert await _image_events(admin, gid) == outputs


async def test_an_output_past_the_size_limit_fails_the_generation_and_stores_nothing(
    stack_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with _stack(stack_settings, max_output_bytes=1024) as url:
        client = await new_user_client(url, session_factory, admin=True)
        try:
            workflow = _images(1, {"class_type": "SaveImage", "inputs": {"filename_prefix": "big"}})
            workflow["5"]["inputs"] |= {"width": 256, "height": 256}
            gid, generation = await _finish(client, workflow)
        finally:
            await client.aclose()
    assert generation["status"] == "FAILED" and generation["images"] == []
    error = generation["error"]
    assert (error["code"], error["node"]) == ("OUTPUT_TOO_LARGE", "9")
    assert "is larger than the limit of 1024 bytes" in error["message"]
    async with session_factory() as session:
        assert (await images_for_generations(session, generation_ids=[uuid.UUID(gid)]))[uuid.UUID(gid)] == []
