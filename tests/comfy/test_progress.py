from __future__ import annotations

import json
from typing import Any

from comfy.events import (
    ExecutionStarted,
    Failed,
    NodeExecuting,
    NodeOutput,
    NodesCached,
    Progress,
    Succeeded,
    parse_message,
)
from comfy.progress import ProgressTracker
from comfy.templates import load_templates

from .conftest import http_answers, load_recording, ws_messages


def _recorded(name: str) -> tuple[dict[str, Any], list[Any]]:
    entries = load_recording(name)
    workflow = http_answers(entries, "POST", "/prompt")[0]["request_json"]["prompt"]
    events = [e for e in (parse_message(m) for m in ws_messages(entries)) if e is not None]
    return workflow, events


def test_recorded_run_is_monotonic_and_ends_at_100() -> None:
    workflow, events = _recorded("03_")
    tracker = ProgressTracker(workflow)
    percents = [tracker.apply(e).percent for e in events]
    assert percents == sorted(percents)
    assert percents[-1] == 100.0
    success = next(i for i, e in enumerate(events) if isinstance(e, Succeeded))
    assert max(percents[:success]) == 99.9
    # weights: EmptyImage 1 + SlowProgress steps=4 + ImageInvert 1 + SaveImage 1 = 7
    tracker = ProgressTracker(workflow)
    pid = "dbd44164-fef9-4179-91ec-f7395d98365f"
    tracker.apply(NodeExecuting(pid, "1"))
    snap = tracker.apply(Progress(pid, "2", 2, 4))
    assert snap.percent == round(100 * 3 / 7, 2)
    assert (snap.node, snap.node_class, snap.step, snap.max_steps) == ("2", "SlowProgress", 2, 4)


def test_cached_nodes_count_as_done() -> None:
    workflow, _ = _recorded("05_")
    tracker = ProgressTracker(workflow)
    tracker.apply(ExecutionStarted("p"))
    snap = tracker.apply(NodesCached("p", ("1",)))
    assert snap.percent == round(100 * 1 / 6, 2)  # 1 + steps 3 + 1 + 1
    snap = tracker.apply(NodesCached("p", ("1", "2", "3", "4")))
    assert snap.percent == 99.9
    assert tracker.apply(NodeOutput("p", "4", ())).percent == 99.9
    assert tracker.apply(Succeeded("p")).percent == 100.0


def test_reported_max_replaces_the_pre_weight() -> None:
    workflow = {
        "1": {"class_type": "KSampler", "inputs": {"steps": 10}},
        "2": {"class_type": "X", "inputs": {}},
    }
    tracker = ProgressTracker(workflow)
    assert tracker.apply(Progress("p", "1", 5, 10)).percent == round(100 * 5 / 11, 2)
    # the sampler turns out to run 20 steps: the total grows, but percent never goes back
    snap = tracker.apply(Progress("p", "1", 6, 20))
    assert snap.percent == round(100 * 5 / 11, 2)
    assert tracker.apply(Progress("p", "1", 20, 20)).percent == round(100 * 20 / 21, 2)


def test_failure_keeps_percent() -> None:
    tracker = ProgressTracker({"1": {"class_type": "A", "inputs": {}}, "2": {"class_type": "B", "inputs": {}}})
    tracker.apply(NodeExecuting("p", "1"))
    tracker.apply(NodeExecuting("p", "2"))
    snap = tracker.apply(Failed("p", "2", "B", "RuntimeError", "boom"))
    assert snap.percent == 50.0


def test_txt2img_through_its_nodes() -> None:
    template = load_templates()["txt2img"]
    tracker = ProgressTracker(template.workflow)
    # 6 single-unit nodes + KSampler steps=20
    assert tracker.apply(NodeExecuting("p", "4")).node_class == "CheckpointLoaderSimple"
    tracker.apply(NodeExecuting("p", "6"))
    snap = tracker.apply(Progress("p", "3", 10, 20))
    # the sampler runs: its inputs (loader 4, prompts 6 and 7, latent 5) have all run
    assert snap.node_class == "KSampler" and snap.percent == round(100 * 14 / 26, 2)
    assert (snap.step, snap.max_steps) == (10, 20)
    snap = tracker.apply(NodeExecuting("p", "8"))
    assert snap.percent == round(100 * 24 / 26, 2) and snap.step is None
    tracker.apply(NodeExecuting("p", "9"))
    snap = tracker.apply(Succeeded("p"))
    assert snap.node is None and snap.percent == 100.0
    assert json.dumps(tracker.snapshot.percent) == "100.0"


def test_a_tracker_that_joins_mid_run_counts_what_must_have_run() -> None:
    """After a takeover the first message may be step 34 of the sampler: the loader, prompts and latent
    it takes input from have run, and percent never drops below what was shown before."""
    template = load_templates()["txt2img"]
    snap = ProgressTracker(template.workflow).apply(Progress("p", "3", 10, 20))
    assert snap.percent == round(100 * 14 / 26, 2)
    late = ProgressTracker(template.workflow, floor=60.0)
    assert late.snapshot.percent == 60.0
    assert late.apply(Progress("p", "3", 10, 20)).percent == 60.0
    assert late.apply(Progress("p", "3", 18, 20)).percent == round(100 * 22 / 26, 2)
    assert ProgressTracker(template.workflow, floor=250.0).snapshot.percent == 99.9
