"""Real PNGs: size, batch, determinism; preview frames of both kinds."""

from __future__ import annotations

import hashlib
import io
import json
import random
import threading
import uuid
from dataclasses import asdict

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from comfy.fake import render
from comfy.fake.config import Dialect
from comfy.fake.server import FakeHandle
from tests.fake.recordings import BUILDS
from tests.fake.replay import wait_history
from tests.fake.test_validation import txt2img
from tests.fake.wire import open_socket


async def _images(http: httpx.AsyncClient, prompt: dict[str, object]) -> list[bytes]:
    answer = await http.post("/prompt", json={"prompt": prompt})
    assert answer.status_code == 200, answer.text
    entry = await wait_history(http, answer.json()["prompt_id"])
    assert entry["status"]["status_str"] == "success"
    images = []
    for image in entry["outputs"]["9"]["images"]:
        got = await http.get("/view", params={k: image[k] for k in ("filename", "subfolder", "type")})
        assert (got.status_code, got.headers["content-type"]) == (200, "image/png")
        images.append(got.content)
    return images


async def test_size_and_batch(http: httpx.AsyncClient) -> None:
    prompt = txt2img(**{"5__width": 96, "5__height": 40, "5__batch_size": 3})
    images = await _images(http, prompt)
    assert len(images) == 3
    decoded = [Image.open(io.BytesIO(data)) for data in images]
    assert all((image.format, image.size) == ("PNG", (96, 40)) for image in decoded)
    assert len(set(images)) == 3


async def test_same_prompt_and_seed_same_bytes(http: httpx.AsyncClient) -> None:
    (first,) = await _images(http, txt2img())
    await http.post("/_fake/reset")  # forget the cache: the second run really renders again
    (again,) = await _images(http, txt2img())
    (other_seed,) = await _images(http, txt2img(**{"3__seed": 43}))
    (other_text,) = await _images(http, txt2img(**{"6__text": "a lighthouse at dawn"}))
    assert first == again
    assert len({first, other_seed, other_text}) == 3


@pytest.mark.parametrize("dialect", BUILDS)
async def test_filenames_count_like_comfyui(http: httpx.AsyncClient, dialect: Dialect) -> None:
    answer = await http.post("/prompt", json={"prompt": txt2img(**{"9__filename_prefix": "a/b"})})
    entry = await wait_history(http, answer.json()["prompt_id"])
    (image,) = entry["outputs"]["9"]["images"]
    assert (image["subfolder"], image["filename"], image["type"]) == ("a", "b_00001_.png", "output")
    if dialect == "packaging":
        assert image["abs_path"].endswith("/output/a/b_00001_.png")
    else:
        assert set(image) == {"filename", "subfolder", "type"}
    escape = await http.post("/prompt", json={"prompt": txt2img(**{"9__filename_prefix": "../x"})})
    assert (await wait_history(http, escape.json()["prompt_id"]))["status"]["status_str"] == "error"
    # Upstream resolves the subfolder against its output folder: `../output/a` is inside it, `../../a` is not.
    assert (await http.get("/view", params={"filename": "b_00001_.png", "subfolder": "../output/a"})).status_code == 200
    assert (await http.get("/view", params={"filename": "b_00001_.png", "subfolder": "../../a"})).status_code == 403
    assert (await http.get("/view", params={"filename": "b_00001_.png", "subfolder": "b"})).status_code == 404


def _reference_txt2img(spec: render.Txt2Img, batch_index: int, max_size: int | None = None) -> Image.Image:
    """The renderer as first written, straight through Pillow: the faster one must match it pixel for pixel."""
    rng = random.Random(hashlib.sha256(json.dumps([asdict(spec), batch_index], sort_keys=True).encode()).digest())

    def rgb() -> tuple[int, int, int]:
        return (rng.randrange(256), rng.randrange(256), rng.randrange(256))

    width, height = spec.width, spec.height
    if max_size is not None and max(width, height) > max_size:
        scale = max_size / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    gradient = Image.linear_gradient("L").rotate(rng.choice([0, 90, 180, 270]))
    image = ImageOps.colorize(gradient.resize((width, height)), rgb(), rgb()).convert("RGB")
    draw = ImageDraw.Draw(image)
    short = min(width, height)
    for _ in range(rng.randint(3, 8)):
        cx, cy = rng.random() * width, rng.random() * height
        half_w, half_h = rng.uniform(0.05, 0.5) * short, rng.uniform(0.05, 0.5) * short
        box = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=rgb())
        else:
            draw.rectangle(box, fill=rgb())
    return image.filter(ImageFilter.GaussianBlur(radius=max(1.0, short / 64)))


@pytest.mark.parametrize("size", [(64, 64), (96, 40), (1, 1), (3, 200), (130, 70), (640, 320)])
def test_render_matches_the_reference_pixel_for_pixel(size: tuple[int, int]) -> None:
    choices = random.Random(size[0] * 1000 + size[1])
    for index in range(40):
        spec = render.Txt2Img(
            positive=f"prompt {index}",
            negative="blurry",
            seed=choices.randrange(2**32),
            width=size[0],
            height=size[1],
            checkpoint="dreamshaper_8.safetensors",
            loras=(("add_detail.safetensors", 0.8),) if index % 2 else (),
            steps=choices.randint(1, 50),
        )
        max_size = 256 if index % 5 == 0 else None
        got, want = render.txt2img(spec, index % 3, max_size), _reference_txt2img(spec, index % 3, max_size)
        assert (got.mode, got.size) == (want.mode, want.size)
        assert got.tobytes() == want.tobytes(), spec


def test_gradient_cache_is_bounded() -> None:
    render._cached_gradient.cache_clear()
    big = render.Txt2Img(positive="cat", negative="", seed=1, width=1024, height=600)
    render.txt2img(big, 0)
    assert render._cached_gradient.cache_info().currsize == 0  # too large to keep
    for width in range(1, 41):
        render.txt2img(render.Txt2Img(positive="cat", negative="", seed=1, width=width, height=8), 0)
    info = render._cached_gradient.cache_info()
    assert info.currsize == info.maxsize == 32


async def test_offload_keeps_only_small_work_on_the_loop() -> None:
    loop_thread = threading.get_ident()
    small = await render.offload(render.INLINE_MAX_PIXELS, threading.get_ident)
    large = await render.offload(render.INLINE_MAX_PIXELS + 1, threading.get_ident)
    assert small == loop_thread
    assert large != loop_thread


def test_render_is_deterministic_and_scalable() -> None:
    spec = render.Txt2Img(positive="cat", negative="", seed=1, width=640, height=320)
    assert render.png_bytes(render.txt2img(spec, 0)) == render.png_bytes(render.txt2img(spec, 0))
    assert render.txt2img(spec, 0, max_size=256).size == (256, 128)


@pytest.mark.parametrize("dialect", BUILDS)
async def test_preview_frames_without_client_id(comfy: FakeHandle, http: httpx.AsyncClient, dialect: Dialect) -> None:
    """Without a client_id, upstream sends type-1 frames to every socket (its hook asks whether the client
    `None` supports preview metadata: no); the packaging sends type-4 frames to the sockets that announced
    the flag and nothing to the others."""
    async with (
        open_socket(comfy.url, str(uuid.uuid4()), feature_flags=True) as modern,
        open_socket(comfy.url, str(uuid.uuid4())) as legacy,
    ):
        answer = await http.post("/prompt", json={"prompt": txt2img()})
        await wait_history(http, answer.json()["prompt_id"])
        for socket in (modern, legacy):
            await socket.wait_count(4, "status")  # on connect, queued, running, done
    if dialect == "upstream":
        assert modern.types().count("binary:1") == 4 and "binary:4" not in modern.types()
        assert legacy.types().count("binary:1") == 4 and "binary:4" not in legacy.types()
        frame = next(f for f in legacy.frames if f["type"] == "binary:1")
        assert frame["format"] == 1
    else:
        assert modern.types().count("binary:4") == 4 and "binary:1" not in modern.types()
        assert not [kind for kind in legacy.types() if kind.startswith("binary")]
        frame = next(f for f in modern.frames if f["type"] == "binary:4")
        assert frame["data"]["node_id"] == "3" and frame["data"]["image_type"] == "image/jpeg"
    assert Image.open(io.BytesIO(frame["image"])).format == "JPEG"


async def test_preview_frames_follow_the_submitters_flags(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    """Upstream: the submitter gets type-4 frames before `progress` if it announced the flag, type-1 frames
    after `progress` if not (recordings 03, 18); other sockets get no previews."""
    for seed, flags in enumerate((True, False)):
        client_id = str(uuid.uuid4())
        async with (
            open_socket(comfy.url, client_id, feature_flags=flags) as submitter,
            open_socket(comfy.url, str(uuid.uuid4()), feature_flags=not flags) as observer,
        ):
            prompt = txt2img(**{"3__seed": seed})  # not cached: the sampler runs each time
            answer = await http.post("/prompt", json={"prompt": prompt, "client_id": client_id})
            await submitter.wait_done(answer.json()["prompt_id"])
            await observer.wait_count(4, "status")
        kinds = [kind for kind in submitter.types() if kind in ("progress", "binary:1", "binary:4")]
        pair = ["binary:4", "progress"] if flags else ["progress", "binary:1"]
        assert kinds == pair * 4
        assert set(observer.types()) <= {"status", "feature_flags"}


async def test_no_previews_when_disabled(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    comfy.config.preview = False
    client_id = str(uuid.uuid4())
    async with open_socket(comfy.url, client_id, feature_flags=True) as ws:
        answer = await http.post("/prompt", json={"prompt": txt2img(), "client_id": client_id})
        await ws.wait_done(answer.json()["prompt_id"])
    assert not [kind for kind in ws.types() if kind.startswith("binary")]
    assert ws.types().count("progress") == 4
