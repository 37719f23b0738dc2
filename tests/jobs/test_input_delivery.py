"""An input uploaded once runs on any backend: each gets the file once, a restarted one gets it again."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comfy.fake.server import FakeConfig, FakeHandle, running_fake
from settings import Settings
from tests.stack import CREATE, GraphQLClient, ended, new_user_client, running_worker, serve

STATUS = "query($id: ID!) { generation(id: $id) { status error { code message } images { mime } } }"


def picture(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
async def two_fakes() -> AsyncIterator[tuple[FakeHandle, FakeHandle]]:
    async with running_fake(FakeConfig(step_time=0.005)) as a, running_fake(FakeConfig(step_time=0.005)) as b:
        yield a, b


@asynccontextmanager
async def _api(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], fake: FakeHandle, **changes: Any
) -> AsyncIterator[tuple[Settings, GraphQLClient]]:
    """An API of a namespace of its own on `fake` (settings `changes` applied) and a new user's client of it."""
    own = settings.model_copy(
        update={
            "namespace": f"deliver-{uuid.uuid4().hex[:8]}",
            "comfyui_urls": (fake.url,),
            "catalog_ttl_s": 1.0,
            **changes,
        }
    )
    from graph.app import create_app

    async with serve(create_app(own)) as url:
        client = await new_user_client(url, sessions)
        try:
            yield own, client
        finally:
            await client.aclose()


async def _upload(client: GraphQLClient, data: bytes) -> str:
    response = await client.http.post(
        "/inputs", files={"file": ("in.png", data, "image/png")}, headers={"Authorization": f"Bearer {client.token}"}
    )
    assert response.status_code == 200, response.text
    input_id: str = response.json()["id"]
    return input_id


async def _img2img(client: GraphQLClient, input_id: str) -> str:
    variables = {
        "input": {"template": "img2img", "prompt": "a lighthouse", "steps": 2, "extra": {"image": input_id}},
    }
    result = (await client.query(CREATE, variables))["createGeneration"]
    assert result["__typename"] == "GenerationPayload", result
    generation_id: str = result["generation"]["id"]
    return generation_id


async def test_an_input_reaches_each_backend_once_and_a_restarted_one_again(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    two_fakes: tuple[FakeHandle, FakeHandle],
) -> None:
    fake_a, fake_b = two_fakes
    changes = {"worker_heartbeat_s": 1.0, "retry_base_delay_s": 0.05, "retry_max_delay_s": 0.2}
    async with _api(settings, session_factory, fake_a, **changes) as (on_a, client):
        on_b = on_a.model_copy(update={"comfyui_urls": (fake_b.url,)})
        input_id = await _upload(client, picture((10, 120, 200)))
        name_on_a: str | None = None

        # Two generations on backend A: the file goes there once (the second finds it by HEAD /view).
        async with running_worker(on_a):
            for _ in range(2):
                done = await ended(client, STATUS, await _img2img(client, input_id))
                assert done["status"] == "SUCCEEDED", done
                assert done["images"] and done["images"][0]["mime"] == "image/png"
        uploads_a = dict(fake_a.fake.stats.uploads)
        assert len(uploads_a) == 1 and list(uploads_a.values()) == [1], uploads_a
        (name_on_a,) = uploads_a
        assert name_on_a.startswith("safelight-") and name_on_a.endswith(".png")
        assert not fake_b.fake.stats.uploads

        # The same input on backend B: B gets its own copy, once, under the same name.
        async with running_worker(on_b):
            for _ in range(2):
                done = await ended(client, STATUS, await _img2img(client, input_id))
                assert done["status"] == "SUCCEEDED", done
        assert dict(fake_b.fake.stats.uploads) == {name_on_a: 1}
        assert dict(fake_a.fake.stats.uploads) == uploads_a, "A was sent the file again"

        # A restarts with an empty input directory (and fresh counters): the next job re-uploads.
        await fake_a.fake.reset()
        async with running_worker(on_a):
            done = await ended(client, STATUS, await _img2img(client, input_id))
            assert done["status"] == "SUCCEEDED", done
        assert dict(fake_a.fake.stats.uploads) == {name_on_a: 1}


async def test_a_missing_input_row_fails_the_generation_for_good(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    two_fakes: tuple[FakeHandle, FakeHandle],
) -> None:
    """The input is gone between the request and the run: INPUT_MISSING, no retry, nothing submitted."""
    from sqlalchemy import delete

    from db.models import Input

    fake_a, _ = two_fakes
    async with _api(settings, session_factory, fake_a, retry_base_delay_s=0.05) as (own, client):
        input_id = await _upload(client, picture((1, 2, 3)))
        generation_id = await _img2img(client, input_id)  # queued: no worker yet
        async with session_factory() as session:
            await session.execute(delete(Input).where(Input.id == uuid.UUID(input_id)))
            await session.commit()
        async with running_worker(own):
            done = await ended(client, STATUS, generation_id)
        assert done["status"] == "FAILED" and done["error"]["code"] == "INPUT_MISSING", done
        assert not fake_a.fake.stats.uploads and not fake_a.fake.stats.submits


async def test_inpaint_and_upscale_read_their_uploaded_inputs(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    two_fakes: tuple[FakeHandle, FakeHandle],
) -> None:
    """An image and a mask (two inputs of one generation), and an upscale of the image: each file sent once."""
    fake_a, _ = two_fakes
    mask = io.BytesIO()
    Image.new("L", (64, 48), 255).save(mask, format="PNG")
    async with _api(settings, session_factory, fake_a) as (own, client):
        image_id = await _upload(client, picture((40, 40, 90)))
        mask_id = await _upload(client, mask.getvalue())
        inpaint = {
            "template": "inpaint",
            "prompt": "a door",
            "steps": 2,
            "extra": {"image": image_id, "mask": mask_id},
        }
        upscale = {"template": "upscale", "extra": {"image": image_id, "factor": 2}}
        async with running_worker(own):
            for request in (inpaint, upscale):
                created = (await client.query(CREATE, {"input": request}))["createGeneration"]
                assert created["__typename"] == "GenerationPayload", created
                done = await ended(client, STATUS, created["generation"]["id"])
                assert done["status"] == "SUCCEEDED", done
        uploads = fake_a.fake.stats.uploads
        assert sorted(uploads.values()) == [1, 1] and all(n.startswith("safelight-") for n in uploads), uploads


async def test_a_failed_upload_is_retried_as_a_new_attempt(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    two_fakes: tuple[FakeHandle, FakeHandle],
) -> None:
    """The backend refuses the file (here: over its upload limit): a transient failure, the next attempt delivers."""
    fake_a, _ = two_fakes
    attempt = "query($id: ID!) { generation(id: $id) { attempt status } }"
    changes = {"retry_base_delay_s": 0.05, "retry_max_delay_s": 0.2, "max_attempts": 5}
    async with _api(settings, session_factory, fake_a, **changes) as (own, client):
        input_id = await _upload(client, picture((5, 6, 7)))
        fake_a.config.max_upload_bytes = 16
        async with running_worker(own):
            generation_id = await _img2img(client, input_id)
            async with asyncio.timeout(30):
                while True:
                    if (await client.query(attempt, {"id": generation_id}))["generation"]["attempt"] >= 2:
                        break
                    await asyncio.sleep(0.02)
            assert not fake_a.fake.stats.submits, "submitted without its input"
            fake_a.config.max_upload_bytes = 50 * 1024 * 1024
            done = await ended(client, STATUS, generation_id)
        assert done["status"] == "SUCCEEDED", done
        assert list(fake_a.fake.stats.upload_writes.values()) == [1]
