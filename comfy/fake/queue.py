"""ComfyUI's prompt queue: pending prompts by number, the running one, the history of finished ones.

Every change announces `status` through `on_change`, the same number of times ComfyUI does (recordings
07 and 08: deleting the last pending prompt announces twice, a clear once).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_HISTORY = 10_000
"""ComfyUI's MAXIMUM_HISTORY_SIZE: the oldest entry goes when a prompt beyond it finishes."""


@dataclass
class QueueItem:
    number: float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]
    sensitive: dict[str, Any] = field(default_factory=dict)

    @property
    def client_id(self) -> str | None:
        client_id = self.extra_data.get("client_id")
        return None if client_id is None else str(client_id)

    def as_object(self) -> dict[str, Any]:
        return {
            "priority": self.number,
            "prompt_id": self.prompt_id,
            "prompt": self.prompt,
            "extra_data": self.extra_data,
            "good_outputs": self.outputs,
            "sensitive": self.sensitive or None,
        }

    def as_array(self) -> list[Any]:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


class PromptQueue:
    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self._pending: list[tuple[float, int, QueueItem]] = []
        self._sequence = itertools.count()
        self._not_empty = asyncio.Event()
        self.running: QueueItem | None = None
        self.history: dict[str, dict[str, Any]] = {}
        self.next_number = 0

    @property
    def remaining(self) -> int:
        return len(self._pending) + (self.running is not None)

    def take_number(self) -> int:
        number = self.next_number
        self.next_number += 1
        return number

    def put(self, item: QueueItem) -> None:
        heapq.heappush(self._pending, (item.number, next(self._sequence), item))
        self._not_empty.set()
        self._on_change()

    async def get(self) -> QueueItem:
        while not self._pending:
            self._not_empty.clear()
            await self._not_empty.wait()
        _, _, item = heapq.heappop(self._pending)
        self.running = item
        self._on_change()
        return item

    def task_done(self, item: QueueItem, entry: dict[str, Any]) -> None:
        if len(self.history) >= MAX_HISTORY and item.prompt_id not in self.history:
            del self.history[next(iter(self.history))]
        self.history[item.prompt_id] = entry
        self.running = None
        self._on_change()

    def pending(self) -> list[QueueItem]:
        return [item for _, _, item in sorted(self._pending, key=lambda entry: entry[:2])]

    def delete(self, prompt_id: str) -> bool:
        for index, (_, _, item) in enumerate(self._pending):
            if item.prompt_id == prompt_id:
                if len(self._pending) == 1:
                    self.wipe()
                else:
                    self._pending.pop(index)
                    heapq.heapify(self._pending)
                self._on_change()
                return True
        return False

    def wipe(self) -> None:
        self._pending.clear()
        self._on_change()

    def history_view(self, max_items: int | None = None) -> dict[str, dict[str, Any]]:
        items = list(self.history.items())
        if max_items is not None:
            items = items[-max_items:] if max_items > 0 else []
        return dict(items)
