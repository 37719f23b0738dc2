"""Issue 16 in the browser: inputs, masks, outputs as inputs and dropped workflows, against the whole stack.

Each test prepares what it needs through the API (a finished generation to reuse), then runs one
`frontend/e2e/<spec>.mjs` (playwright-core driving Debian's Chromium); see tests/browser/test_frontend.py
for how the stack and the scripts are started.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comfy.fake.server import FakeHandle
from settings import Settings
from tests.browser.test_frontend import MakeClient, _create, _finish, _token, run_spec
from tests.jobs.test_output_kinds import _images as media_workflow
from tests.jobs.test_output_kinds import _run as run_media
from tests.jobs.test_output_kinds import _stack as media_stack
from tests.stack import new_user_client

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("worker")]


async def _finished_txt2img(make_client: MakeClient, **input: Any) -> tuple[str, str]:
    """A finished txt2img generation of the client's user: (token, generation id)."""
    client = await make_client()
    assert client.token is not None
    generation = await _create(client, **input)
    await _finish(client, generation["id"])
    return client.token, generation["id"]


async def test_upload_an_image_then_img2img(api_url: str, fake: FakeHandle, make_client: MakeClient) -> None:
    fake.config.step_time = 0.01
    await run_spec("img2img", api_url, await _token(make_client))


async def test_paint_a_mask_then_inpaint(api_url: str, fake: FakeHandle, make_client: MakeClient) -> None:
    fake.config.step_time = 0.01
    await run_spec("inpaint", api_url, await _token(make_client))


async def test_upscale_an_earlier_output_and_vary_its_seed(
    api_url: str, fake: FakeHandle, make_client: MakeClient
) -> None:
    fake.config.step_time = 0.0
    token, source = await _finished_txt2img(make_client, prompt="a harbour at night", steps=2, batchSize=2)
    await run_spec("upscale", api_url, token, source)


async def test_drop_a_png_to_fill_the_form(api_url: str, fake: FakeHandle, make_client: MakeClient) -> None:
    fake.config.step_time = 0.0
    token, source = await _finished_txt2img(
        make_client,
        prompt="a lighthouse on a cliff, storm",
        negativePrompt="people",
        steps=7,
        cfg=5.5,
        seed=424242,
        width=72,
    )
    await run_spec("pngdrop", api_url, token, source)


async def test_an_admin_saves_an_editor_workflow_as_a_template(
    api_url: str, fake: FakeHandle, make_client: MakeClient
) -> None:
    fake.config.step_time = 0.0
    client = await make_client(admin=True)
    assert client.token is not None
    await run_spec("template_upload", api_url, client.token, f"lighthouse-{uuid.uuid4().hex[:8]}")


async def test_issue16_screens_at_desktop_and_phone(api_url: str, fake: FakeHandle, make_client: MakeClient) -> None:
    """Screenshots of the new screens to tests/browser/artifacts/ (or SAFELIGHT_ARTIFACTS), with layout checks."""
    fake.config.step_time = 0.0
    token, source = await _finished_txt2img(
        make_client, prompt="a harbour at night, lanterns", steps=2, batchSize=3, width=512, height=512
    )
    fake.config.step_time = 0.1
    await run_spec("shots16", api_url, token, source)


async def test_outputs_of_every_kind_in_the_viewer(
    stack_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """An animation, a GIF from a video combine node, a text and a sound: each shown by its kind in the
    grid and the lightbox (images, <audio> with controls, preformatted text), with its download link."""
    async with media_stack(stack_settings) as url:
        admin = await new_user_client(url, session_factory, admin=True)
        try:
            animated = {"filename_prefix": "anim", "fps": 8.0, "lossless": False, "quality": 70, "method": "fastest"}
            workflow = media_workflow(2, {"class_type": "SaveAnimatedWEBP", "inputs": animated})
            workflow |= {
                "40": {"class_type": "VHS_VideoCombine", "inputs": {
                    "images": ["8", 0], "frame_rate": 10, "loop_count": 0, "filename_prefix": "combined",
                    "format": "image/gif", "pingpong": False, "save_output": True}},
                "20": {"class_type": "PrimitiveString", "inputs": {"value": "a caption: héllo, wörld\nsecond line"}},
                "21": {"class_type": "PreviewAny", "inputs": {"source": ["20", 0]}},
                "30": {"class_type": "EmptyLatentAudio", "inputs": {"seconds": 1.0, "batch_size": 1}},
                "31": {"class_type": "VAEDecodeAudio", "inputs": {"samples": ["30", 0], "vae": ["4", 2]}},
                "32": {"class_type": "SaveAudio", "inputs": {"audio": ["31", 0], "filename_prefix": "audio/clip"}},
            }  # fmt: skip
            gid, outputs = await run_media(admin, workflow)
            assert sorted(o["kind"] for o in outputs) == ["ANIMATION", "ANIMATION", "AUDIO", "TEXT"], outputs
            assert admin.token is not None
            await run_spec("outputs", url, admin.token, gid)
        finally:
            await admin.aclose()
