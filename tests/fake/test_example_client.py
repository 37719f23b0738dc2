"""ComfyUI's own `websockets_api_example.py` flow, unchanged apart from the transport library: urllib for
HTTP and a blocking websocket, run in a thread while the fake serves in the test's event loop."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request
import uuid
from typing import Any

import pytest
from websockets.sync.client import connect

from comfy.fake.server import FakeHandle
from tests.fake.recordings import BUILDS
from tests.fake.test_validation import txt2img


def _run_example(server_address: str, prompt: dict[str, Any]) -> dict[str, list[bytes]]:
    client_id = str(uuid.uuid4())

    def queue_prompt(prompt: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps({"prompt": prompt, "client_id": client_id}).encode("utf-8")
        req = urllib.request.Request(f"http://{server_address}/prompt", data=data)
        result: dict[str, Any] = json.loads(urllib.request.urlopen(req).read())
        return result

    def get_image(filename: str, subfolder: str, folder_type: str) -> bytes:
        data = {"filename": filename, "subfolder": subfolder, "type": folder_type}
        url_values = urllib.parse.urlencode(data)
        with urllib.request.urlopen(f"http://{server_address}/view?{url_values}") as response:
            body: bytes = response.read()
            return body

    def get_history(prompt_id: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://{server_address}/history/{prompt_id}") as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    with connect(f"ws://{server_address}/ws?clientId={client_id}") as ws:
        prompt_id = queue_prompt(prompt)["prompt_id"]
        output_images: dict[str, list[bytes]] = {}
        while True:
            out = ws.recv()
            if isinstance(out, str):
                message = json.loads(out)
                if message["type"] == "executing":
                    data = message["data"]
                    if data["node"] is None and data["prompt_id"] == prompt_id:
                        break  # Execution is done
            else:
                continue  # previews are binary data

        history = get_history(prompt_id)[prompt_id]
        for node_id in history["outputs"]:
            node_output = history["outputs"][node_id]
            images_output = []
            if "images" in node_output:
                for image in node_output["images"]:
                    image_data = get_image(image["filename"], image["subfolder"], image["type"])
                    images_output.append(image_data)
            output_images[node_id] = images_output
    return output_images


@pytest.mark.parametrize("dialect", BUILDS)
async def test_websockets_api_example(comfy: FakeHandle) -> None:
    address = comfy.url.removeprefix("http://")
    images = await asyncio.to_thread(_run_example, address, txt2img(**{"5__batch_size": 2}))
    assert list(images) == ["9"]
    assert len(images["9"]) == 2
    assert all(data.startswith(b"\x89PNG\r\n\x1a\n") for data in images["9"])
