"""ComfyClient's input uploads against the fake ComfyUI over real HTTP: upload, HEAD check, view back."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from comfy.client import ComfyClient
from comfy.events import OutputImage

server = pytest.importorskip("comfy.fake.server")


def _png(color: tuple[int, int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_an_upload_is_there_afterwards_and_reads_back() -> None:
    red, blue = _png((255, 0, 0, 255)), _png((0, 0, 255, 128))
    async with server.running_fake(server.FakeConfig()) as fake, ComfyClient(fake.url) as client:
        assert await client.has_input("safelight-abc.png") is False
        assert await client.upload_image("safelight-abc.png", red) == "safelight-abc.png"
        assert await client.has_input("safelight-abc.png") is True
        assert await client.view(OutputImage("safelight-abc.png", "", "input")) == red
        # overwrite=True replaces the file under the same name
        assert await client.upload_image("safelight-abc.png", blue) == "safelight-abc.png"
        assert await client.view(OutputImage("safelight-abc.png", "", "input")) == blue
        mask = await client.upload_mask(
            "safelight-mask.png", blue, {"filename": "safelight-abc.png", "subfolder": "", "type": "input"}
        )
        assert await client.has_input(mask) is True
