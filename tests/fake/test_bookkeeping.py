"""What the fake remembers stays bounded: history like ComfyUI's, execution counts."""

from __future__ import annotations

import pytest

from comfy.fake import queue, stats
from comfy.fake.queue import PromptQueue, QueueItem
from comfy.fake.stats import Stats


def _item(prompt_id: str) -> QueueItem:
    return QueueItem(0, prompt_id, {}, {}, [])


def test_history_keeps_the_newest_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue, "MAX_HISTORY", 3)
    prompts = PromptQueue(lambda: None)
    for index in range(5):
        prompts.task_done(_item(f"p{index}"), {"n": index})
    assert list(prompts.history) == ["p2", "p3", "p4"]
    prompts.task_done(_item("p3"), {"n": "again"})  # a prompt id run again replaces its entry in place
    assert list(prompts.history) == ["p2", "p3", "p4"]
    assert prompts.history["p3"] == {"n": "again"}


def test_execution_counts_keep_the_newest_prompts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "MAX_EXECUTIONS", 2)
    seen = Stats()
    for prompt_id in ("a", "b", "b", "c"):
        seen.count_execution(prompt_id)
    assert dict(seen.executions) == {"b": 2, "c": 1}
    assert seen.executions["a"] == 0
