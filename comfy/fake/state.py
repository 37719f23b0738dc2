"""One fake ComfyUI instance: its config, queue, history, sockets, outputs, stats and worker task."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import replace
from typing import Any

from comfy.fake.catalog import LiveChoices
from comfy.fake.config import FakeConfig
from comfy.fake.executor import Executor
from comfy.fake.hub import Hub, status_message
from comfy.fake.inputs import InputStore
from comfy.fake.queue import PromptQueue, QueueItem
from comfy.fake.stats import Stats
from comfy.fake.storage import OutputStore
from comfy.fake.validation import Accepted, Live, no_prompt, validate_prompt

SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")


class FakeComfy:
    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self._initial_config = replace(config)
        self.hub = Hub()
        self.stats = Stats()
        self.store = OutputStore()
        self.inputs = InputStore()
        self.queue = PromptQueue(self._announce_status)
        self.executor = self._new_executor()
        self._worker: asyncio.Task[None] | None = None

    def _new_executor(self) -> Executor:
        return Executor(
            config=self.config, hub=self.hub, store=self.store, stats=self.stats, queue=self.queue, inputs=self.inputs
        )

    def live_choices(self) -> LiveChoices:
        """The combos that list folders: LoadImage's input files, UpscaleModelLoader's models."""
        return {
            ("LoadImage", "image"): self.inputs.image_names(),
            ("LoadImageMask", "image"): self.inputs.file_names(),
            ("UpscaleModelLoader", "model_name"): list(self.config.upscale_models),
        }

    def status_data(self) -> dict[str, Any]:
        return {"status": {"exec_info": {"queue_remaining": self.queue.remaining}}}

    def _announce_status(self) -> None:
        if self.hub.listening():
            self.hub.send_text(status_message(self.queue.remaining))

    async def start(self) -> None:
        self._worker = asyncio.create_task(self.executor.serve(), name="fake-comfyui-worker")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def close(self) -> None:
        await self.stop()
        self.hub.close_all()
        self.store.remove()
        self.inputs.clear()

    async def reset(self) -> None:
        """Forget everything (queue, history, cache, outputs, stats) and restore the starting config."""
        await self.stop()
        self.config.replace_with(self._initial_config)
        self.stats = Stats()
        self.store.clear()
        self.inputs.clear()
        self.queue = PromptQueue(self._announce_status)
        self.executor = self._new_executor()
        await self.start()

    def submit(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """ComfyUI's `POST /prompt`: (status code, JSON body). Malformed shapes raise (→ HTTP 500)."""
        if "number" in body:
            number: float = float(body["number"])
        else:
            number = self.queue.take_number()
            if body.get("front"):
                number = -number
        if "prompt" not in body:
            return 400, no_prompt().body
        prompt_id = str(body.get("prompt_id", uuid.uuid4()))
        upstream = self.config.dialect == "upstream"
        live = Live(
            choices={("UpscaleModelLoader", "model_name"): list(self.config.upscale_models)},
            input_exists=lambda name: self.inputs.resolve(name) is not None,
        )
        result = validate_prompt(body["prompt"], upstream=upstream, live=live)
        extra_data: dict[str, Any] = dict(body.get("extra_data", {}))
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        if not isinstance(result, Accepted):
            return 400, result.body
        sensitive: dict[str, Any] = {}
        if not upstream:
            # The packaging keeps credentials out of extra_data and stamps the submission (upstream: neither).
            sensitive = {key: extra_data.pop(key) for key in SENSITIVE_EXTRA_DATA_KEYS if key in extra_data}
            extra_data["create_time"] = int(time.time() * 1000)
        self.queue.put(QueueItem(number, prompt_id, result.prompt, extra_data, result.outputs, sensitive))
        return 200, {"prompt_id": prompt_id, "number": number, "node_errors": result.node_errors}
