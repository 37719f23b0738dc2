"""Runs queued prompts one at a time and emits ComfyUI's websocket messages in ComfyUI's order.

Targeting, as recorded (tests/recordings):
- both dialects: `status` reaches every socket; `progress_state` goes to the submitting client, or to all
  when the prompt had no client_id; `execution_*`, `executing` and `executed` go to the submitting client
  only (nowhere without a client_id), except `execution_interrupted`, which is broadcast then.
- upstream (0.3.64): `progress` and previews go where `progress_state` goes. A client that announced
  `supports_preview_metadata` gets a type-4 frame before each `progress`, one that did not a type-1 frame
  after it (03, 18); without a client_id every socket gets type-1 frames (upstream's progress hook asks
  whether client `None` supports preview metadata: no; no recording has that case).
- packaging (0.12.1): `progress` reaches every socket (09); type-4 frames go to clients that announced the
  flag, and nothing to those that did not (04).
History `status.messages` are `[event, data]` pairs upstream (16) and strings in the packaging.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import partial
from typing import Any

from PIL import Image

from comfy.fake import render
from comfy.fake.catalog import NODES
from comfy.fake.config import FakeConfig
from comfy.fake.hub import (
    Hub,
    executing_done_message,
    executing_message,
    execution_cached_message,
    json_string,
    node_state_entry,
    progress_message,
    progress_state_message,
    prompt_event_message,
)
from comfy.fake.inputs import InputStore
from comfy.fake.media_nodes import MEDIA_RUNNERS
from comfy.fake.nodes import RUNNERS, VALUE_REPR, NodeError, Outputs
from comfy.fake.queue import PromptQueue, QueueItem
from comfy.fake.stats import Instant, Stats
from comfy.fake.storage import OutputStore

logger = logging.getLogger(__name__)

# The frames of recording 10's traceback that lead into a node's function.
_TRACEBACK_HEAD = [
    '  File "/opt/ComfyUI/comfy/cmd/execution.py", line 634, in _execute\n'
    "    output_data, output_ui, has_subgraph, has_pending_tasks = await get_output_data(prompt_id, "
    "unique_id, obj, input_data_all, execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, "
    "execution_list=execution_list, executed=executed, v3_data=v3_data)\n",
    '  File "/opt/ComfyUI/comfy/cmd/execution.py", line 408, in get_output_data\n'
    "    return_values = await _async_map_node_over_list(prompt_id, unique_id, obj, input_data_all, "
    "obj.FUNCTION, allow_interrupt=True, execution_block_cb=execution_block_cb, "
    "pre_execute_cb=pre_execute_cb, v3_data=v3_data, execution_list=execution_list, executed=executed)\n",
    '  File "/opt/ComfyUI/comfy/cmd/execution.py", line 381, in __async_map_node_over_list\n'
    "    await process_inputs(input_dict, i)\n",
    '  File "/opt/ComfyUI/comfy/cmd/execution.py", line 369, in process_inputs\n'
    "    result = f(**inputs)\n             ^^^^^^^^^^^\n",
]


# The same frames upstream (recording 10 of tests/recordings/upstream).
_UPSTREAM_TRACEBACK_HEAD = [
    '  File "/srv/ComfyUI/execution.py", line 496, in execute\n'
    "    output_data, output_ui, has_subgraph, has_pending_tasks = await get_output_data(prompt_id, "
    "unique_id, obj, input_data_all, execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, "
    "hidden_inputs=hidden_inputs)\n",
    '  File "/srv/ComfyUI/execution.py", line 315, in get_output_data\n'
    "    return_values = await _async_map_node_over_list(prompt_id, unique_id, obj, input_data_all, "
    "obj.FUNCTION, allow_interrupt=True, execution_block_cb=execution_block_cb, "
    "pre_execute_cb=pre_execute_cb, hidden_inputs=hidden_inputs)\n",
    '  File "/srv/ComfyUI/execution.py", line 289, in _async_map_node_over_list\n'
    "    await process_inputs(input_dict, i)\n",
    '  File "/srv/ComfyUI/execution.py", line 277, in process_inputs\n'
    "    result = f(**inputs)\n             ^^^^^^^^^^^\n",
]


class _Interrupted(Exception):
    pass


@dataclass(frozen=True)
class _CachedNode:
    outputs: Outputs
    ui: dict[str, Any] | None


def _now_ms() -> int:
    return int(time.time() * 1000)


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def _frozen(value: Any) -> Hashable:
    """An input value as part of a cache key: a str as itself, other scalars with their type (so 1, 1.0 and
    True stay different keys), anything else as its sorted JSON."""
    kind = type(value)
    if isinstance(value, str):
        return value
    if kind is int or kind is float or kind is bool or value is None:
        return (kind, value)
    return ("json", json.dumps(value, sort_keys=True, default=str))


_ALL_RUNNERS = {**RUNNERS, **MEDIA_RUNNERS}
_FILE_LOADERS = {"LoadImage", "LoadImageMask"}


def _signatures(prompt: dict[str, Any], inputs: InputStore | None = None) -> dict[str, Hashable]:
    """A node's cache key: its class and inputs, with each link replaced by the key of its source; a file
    loader's also holds the file's digest (upstream's IS_CHANGED), so a re-uploaded file runs again.

    Keys are nested tuples (a link holds its source's key itself): they tell apart what the sorted JSON
    they replace told apart, without encoding and hashing JSON for every node of every prompt.
    """
    memo: dict[str, Hashable] = {}

    def signature(node_id: str, visiting: frozenset[str]) -> Hashable:
        known = memo.get(node_id)
        if known is not None:
            return known
        node = prompt[node_id]
        parts: list[tuple[str, Hashable]] = []
        for name, value in sorted(node["inputs"].items()):
            if _is_link(value) and value[0] in prompt and value[0] not in visiting:
                parts.append((name, ("link", signature(value[0], visiting | {node_id}), _frozen(value[1]))))
            else:
                parts.append((name, _frozen(value)))
        if inputs is not None and node["class_type"] in _FILE_LOADERS:
            stored = inputs.resolve(str(node["inputs"].get("image")))
            parts.append(("\0is_changed", None if stored is None else stored.digest))
        key = (node["class_type"], tuple(parts))
        memo[node_id] = key
        return key

    return {node_id: signature(node_id, frozenset()) for node_id in prompt}


def _execution_order(prompt: dict[str, Any], outputs: list[str]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(node_id: str) -> None:
        if node_id in seen:
            return
        seen.add(node_id)
        for value in prompt[node_id]["inputs"].values():
            if _is_link(value) and value[0] in prompt:
                visit(value[0])
        order.append(node_id)

    for output in outputs:
        visit(output)
    return order


class Executor:
    def __init__(
        self, *, config: FakeConfig, hub: Hub, store: OutputStore, stats: Stats, queue: PromptQueue, inputs: InputStore
    ) -> None:
        self.config = config
        self.inputs = inputs
        self.hub = hub
        self.store = store
        self.stats = stats
        self.queue = queue
        self.cache: dict[Hashable, _CachedNode] = {}
        self.current: Run | None = None

    async def serve(self) -> None:
        """The worker loop: one prompt at a time, in queue order, until cancelled."""
        while True:
            item = await self.queue.get()
            run = Run(self, item)
            self.current = run
            try:
                await run.execute()
            finally:
                self.current = None

    def interrupt(self, prompt_id: str | None) -> bool:
        """Interrupt the running prompt (only if it is `prompt_id`, when given)."""
        run = self.current
        if run is None or (prompt_id and run.item.prompt_id != prompt_id):
            return False
        run.interrupted.set()
        return True

    def reconnect_node(self, sid: str) -> str | None:
        """The node to re-announce to a client reconnecting while its prompt runs (recording 09)."""
        run = self.current
        if run is None or run.client_id != sid:
            return None
        return run.last_node_id


class Run:
    """One execution of one queue item; also the context its nodes run in."""

    def __init__(self, executor: Executor, item: QueueItem) -> None:
        self._executor = executor
        self._hub = executor.hub
        self.item = item
        self.prompt_id = item.prompt_id
        self.client_id = item.client_id
        self.store = executor.store
        self.inputs = executor.inputs
        self.interrupted = asyncio.Event()
        self.last_node_id: str | None = None
        self._config = executor.config
        self._node_id = ""
        self._prompt_json = json_string(self.prompt_id)
        self._state_entries: dict[str, str] = {}
        """node id → its encoded member of `progress_state.data.nodes`, in first-report order."""
        self._state_totals: dict[str, float] = {}
        self._upstream = self._config.dialect == "upstream"
        self._progress_to = self.client_id if self._upstream else None
        """Where `progress` goes: the submitter (every socket without a client_id) upstream, everyone here."""
        self._messages: list[Any] = []
        self._executed: list[str] = []
        self._outputs: dict[str, Any] = {}
        self._meta: dict[str, Any] = {}
        self._dropped = False

    # NodeContext
    @property
    def step_time(self) -> float:
        return self._config.step_time

    @property
    def prompt(self) -> dict[str, Any]:
        return self.item.prompt

    @property
    def extra_pnginfo(self) -> dict[str, Any] | None:
        extra = self.item.extra_data.get("extra_pnginfo")
        return extra if isinstance(extra, dict) else None

    @property
    def preview_enabled(self) -> bool:
        return self._config.preview

    @property
    def abs_paths(self) -> bool:
        return not self._upstream

    async def sleep(self, seconds: float) -> None:
        if self.interrupted.is_set():
            raise _Interrupted
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        try:
            await asyncio.wait_for(self.interrupted.wait(), seconds)
        except TimeoutError:
            return
        raise _Interrupted

    async def progress(self, value: int, total: int, preview: Image.Image | None = None) -> None:
        node_id = self._node_id
        self._set_state(node_id, "running", value, total)
        hub = self._hub
        jpeg: bytes | None = None
        if preview is not None and hub.wants_preview(self.client_id, legacy=self._upstream):
            jpeg = await render.offload(preview.width * preview.height, partial(render.jpeg_preview, preview))
            if self.client_id is not None or not self._upstream:
                metadata = {
                    "node_id": node_id,
                    "prompt_id": self.prompt_id,
                    "display_node_id": node_id,
                    "parent_node_id": None,
                    "real_node_id": node_id,
                    "image_type": "image/jpeg",
                }
                hub.send_metadata_preview(jpeg, metadata, self.client_id)
        if hub.listening(self._progress_to):
            stamp = time.time() if self._config.stamp_messages else None
            message = progress_message(value, total, json_string(node_id), self._prompt_json, stamp)
            hub.send_text(message, self._progress_to)
        if jpeg is not None and self._upstream:
            hub.send_legacy_preview(jpeg, self.client_id, flagged_too=self.client_id is None)
        if not self._dropped and self._config.drop_ws_mid_run > 0:
            self._config.drop_ws_mid_run -= 1
            self._dropped = True
            self._hub.close_all()

    # messages
    def _record(self, kind: str, data: dict[str, Any], text: str | None = None) -> None:
        """Keep a message for the history's `status.messages`: `[kind, data]` upstream, `text` (or `kind`)
        in the packaging."""
        if self._upstream:
            self._messages.append([kind, data])
        else:
            self._messages.append(kind if text is None else text)

    def _to_client(self, kind: str, data: dict[str, Any]) -> None:
        if self.client_id is not None:
            self._hub.send(kind, data, self.client_id)

    def _to_client_text(self, message: Callable[[], str]) -> None:
        """Encode (only if the submitting client has a socket) and send to it."""
        if self.client_id is not None and self._hub.listening(self.client_id):
            self._hub.send_text(message(), self.client_id)

    def _set_state(self, node_id: str, state: str, value: float, total: float) -> None:
        """Record the node's state and send every node's: ComfyUI's `progress_state`."""
        prompt = self._prompt_json
        self._state_entries[node_id] = node_state_entry(json_string(node_id), prompt, state, value, total)
        self._state_totals[node_id] = total
        if self._hub.listening(self.client_id):
            self._hub.send_text(progress_state_message(prompt, self._state_entries.values()), self.client_id)

    def _finish_state(self, node_id: str) -> None:
        total = self._state_totals[node_id]
        self._set_state(node_id, "finished", total, total)

    def _announce_output(self, node_id: str, ui: dict[str, Any]) -> None:
        self._outputs[node_id] = ui
        self._meta[node_id] = {
            "node_id": node_id,
            "display_node": node_id,
            "parent_node": None,
            "real_node_id": node_id,
        }
        self._to_client(
            "executed", {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": self.prompt_id}
        )

    # execution
    async def execute(self) -> None:
        executor = self._executor
        prompt = self.item.prompt
        started = Instant.now()
        executor.stats.count_execution(self.prompt_id)
        executor.stats.record("execution_start", started, prompt_id=self.prompt_id)
        stamp = _now_ms()
        self._to_client_text(lambda: prompt_event_message("execution_start", self._prompt_json, stamp))
        self._record("execution_start", {"prompt_id": self.prompt_id, "timestamp": stamp})

        signatures = _signatures(prompt, executor.inputs)
        cached = [node_id for node_id in prompt if signatures[node_id] in executor.cache]
        stamp = _now_ms()
        self._to_client_text(lambda: execution_cached_message(cached, self._prompt_json, stamp))
        self._record("execution_cached", {"nodes": cached, "prompt_id": self.prompt_id, "timestamp": stamp})

        fresh: dict[Hashable, _CachedNode] = {}
        values: dict[str, Outputs] = {}
        success = False
        try:
            for node_id in _execution_order(prompt, self.item.outputs):
                hit = executor.cache.get(signatures[node_id])
                if hit is not None:
                    values[node_id] = hit.outputs
                    fresh[signatures[node_id]] = hit
                    if hit.ui is not None:
                        self._announce_output(node_id, hit.ui)
                        self._set_state(node_id, "finished", 1, 1)
                    continue
                self._node_id = node_id
                if self.interrupted.is_set():
                    raise _Interrupted
                outputs, ui = await self._run_node(node_id, values)
                fresh[signatures[node_id]] = _CachedNode(outputs, ui)
            success = True
        except _Interrupted:
            self._report_interrupted()
        except NodeError as ex:
            self._report_error(ex.exception_type, ex.message, values)
        except Exception as ex:
            logger.exception("fake ComfyUI node %s failed", self._node_id)
            self._report_error(type(ex).__name__, str(ex), values)
        finally:
            keep = set(signatures.values())
            executor.cache = {key: node for key, node in {**executor.cache, **fresh}.items() if key in keep}

        if success:
            executor.stats.record("execution_success", Instant.now(), prompt_id=self.prompt_id)
            stamp = _now_ms()
            self._to_client_text(lambda: prompt_event_message("execution_success", self._prompt_json, stamp))
            self._record("execution_success", {"prompt_id": self.prompt_id, "timestamp": stamp})
        entry = {
            "prompt": self.item.as_array(),
            "outputs": self._outputs,
            "status": {
                "status_str": "success" if success else "error",
                "completed": success,
                "messages": self._messages,
            },
            "meta": self._meta,
        }
        executor.queue.task_done(self.item, entry)
        self._to_client_text(lambda: executing_done_message(self._prompt_json))

    async def _run_node(self, node_id: str, values: dict[str, Outputs]) -> tuple[Outputs, dict[str, Any] | None]:
        node = self.item.prompt[node_id]
        class_type = node["class_type"]
        self._node_id = node_id
        self._set_state(node_id, "running", 0.0, 1.0)
        if self.client_id is not None:
            self._hub.send_text(executing_message(json_string(node_id), self._prompt_json), self.client_id)
            self.last_node_id = node_id
        inputs = {
            name: values[value[0]][value[1]] if _is_link(value) else value for name, value in node["inputs"].items()
        }
        if self._config.execution_error_node_class == class_type:
            raise NodeError("RuntimeError", f"Injected execution error in {class_type} (fake ComfyUI)")
        outputs, ui = await _ALL_RUNNERS[class_type](inputs, self)
        values[node_id] = outputs
        self._executed.append(node_id)
        if ui is not None:
            self._announce_output(node_id, ui)
        self._finish_state(node_id)
        return outputs, ui

    def _report_interrupted(self) -> None:
        node_id = self._node_id
        data = {
            "prompt_id": self.prompt_id,
            "node_id": node_id,
            "node_type": self.item.prompt[node_id]["class_type"] if node_id else None,
            "executed": list(self._executed),
            "timestamp": _now_ms(),
        }
        self._hub.send("execution_interrupted", data, self.client_id)
        self._record("execution_interrupted", data)

    def _report_error(self, exception_type: str, message: str, values: dict[str, Outputs]) -> None:
        node_id = self._node_id
        node = self.item.prompt[node_id]
        exception_message = f"{message}\n"
        data = {
            "prompt_id": self.prompt_id,
            "node_id": node_id,
            "node_type": node["class_type"],
            "executed": list(self._executed),
            "exception_message": exception_message,
            "exception_type": exception_type,
            "traceback": [
                *(_UPSTREAM_TRACEBACK_HEAD if self._upstream else _TRACEBACK_HEAD),
                f'  File "{"/srv" if self._upstream else "/opt"}/ComfyUI/custom_nodes/fake_nodes.py", line 1, in run\n'
                f"    raise {exception_type}(message)\n",
            ],
            "current_inputs": self._current_inputs(node),
            "current_outputs": [
                *self.item.outputs,
                *(other for other in self.item.prompt if other not in self.item.outputs),
            ],
            "timestamp": _now_ms(),
        }
        self._to_client("execution_error", data)
        self._record("execution_error", data, f"execution_error: {exception_message}")

    def _current_inputs(self, node: dict[str, Any]) -> dict[str, list[Any]]:
        definition = NODES[node["class_type"]]
        formatted: dict[str, list[Any]] = {}
        for name, value in node["inputs"].items():
            found = definition.input_spec(name)
            if found is None:
                continue
            if _is_link(value):
                formatted[name] = [VALUE_REPR.get(found[0][0], "<class 'object'>")]
            else:
                formatted[name] = [value]
        return formatted
