"""Overall progress of one prompt across its whole graph.

The rule (what the UI's percent means):

* Every node of the workflow weighs 1 unit, except nodes with an integer
  `steps` input (KSampler and friends), which weigh `steps` units from the
  start, so the total is known before anything runs.
* A node that reports `progress` weighs its reported `max` from then on (a
  sampler that reports 30 steps weighs 30 even if its `steps` said otherwise).
* A node is done when it is cached (`execution_cached`), when it produced
  output (`executed`), when `progress_state` says it finished, or when ComfyUI
  moves on to another node; so is every node it takes input from, directly or
  not, once it runs (what a tracker that joined mid-run, after a takeover or a
  reconnect, learns from the first node it hears of). A running node
  contributes `value / max` of its weight.
* percent = 100 * done units / total units, never decreasing (nor below the
  `floor` a tracker that joined mid-run starts from), and held below 100 until
  `execution_success`; it is exactly 100 only then.

Nodes that ComfyUI reports but the workflow does not contain (expanded
sub-nodes) are ignored. Only events of the tracked workflow's prompt should be
applied; the socket already routes them that way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from comfy.events import (
    ComfyEvent,
    NodeExecuting,
    NodeOutput,
    NodesCached,
    Progress,
    ProgressState,
    Succeeded,
)

__all__ = ["ProgressSnapshot", "ProgressTracker"]

_BELOW_DONE = 99.9


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    """Where the prompt is; what it is doing (the `Phase`) is the job's to say (jobs/worker/follow.py)."""

    percent: float
    node: str | None
    node_class: str | None
    step: int | None
    max_steps: int | None


class ProgressTracker:
    def __init__(self, workflow: Mapping[str, Any], *, floor: float = 0.0) -> None:
        self._classes: dict[str, str] = {}
        self._weight: dict[str, float] = {}
        self._inputs: dict[str, tuple[str, ...]] = {}  # the nodes each node links to
        for node_id, node in workflow.items():
            node_class = str(node.get("class_type", "")) if isinstance(node, Mapping) else ""
            inputs = node.get("inputs") if isinstance(node, Mapping) else None
            steps = inputs.get("steps") if isinstance(inputs, Mapping) else None
            weight = float(steps) if type(steps) is int and steps > 0 else 1.0
            self._classes[str(node_id)] = node_class
            self._weight[str(node_id)] = weight
            links = (v for v in inputs.values() if isinstance(v, list) and len(v) == 2) if inputs else ()
            self._inputs[str(node_id)] = tuple(str(link[0]) for link in links)
        self._total = sum(self._weight.values()) or 1.0
        self._done: dict[str, float] = {}  # units done per node
        self._percent = min(_BELOW_DONE, max(0.0, floor))
        self._succeeded = False
        self._snapshot = ProgressSnapshot(round(self._percent, 2), None, None, None, None)

    @property
    def snapshot(self) -> ProgressSnapshot:
        return self._snapshot

    def apply(self, event: ComfyEvent) -> ProgressSnapshot:
        """Fold one event of this prompt in and return the resulting snapshot."""
        snap = self._snapshot
        node, step, max_steps = snap.node, snap.step, snap.max_steps
        if isinstance(event, Progress):
            if event.node in self._weight:
                if event.max > 0 and event.max != self._weight[event.node]:
                    self._set_weight(event.node, float(event.max))
                self._set_done(event.node, min(float(event.value), self._weight[event.node]))
                if event.node != node:
                    self._finish_current(node)
                    self._finish_inputs(event.node)
                    node = event.node
            step, max_steps = event.value, event.max
        elif isinstance(event, NodeExecuting):
            if event.node != node:
                self._finish_current(node)
                self._finish_inputs(event.node)
                node, step, max_steps = event.node, None, None
        elif isinstance(event, ProgressState):
            for node_id, state in event.nodes.items():
                if node_id not in self._weight:
                    continue
                if state.state == "finished":
                    self._set_done(node_id, self._weight[node_id])
                elif state.max > 1:
                    if state.max != self._weight[node_id]:
                        self._set_weight(node_id, state.max)
                    self._set_done(node_id, min(state.value, state.max))
        elif isinstance(event, NodesCached):
            for node_id in event.nodes:
                if node_id in self._weight:
                    self._set_done(node_id, self._weight[node_id])
        elif isinstance(event, NodeOutput):
            if event.node in self._weight:
                self._set_done(event.node, self._weight[event.node])
        elif isinstance(event, Succeeded):
            self._succeeded = True
            node, step, max_steps = None, None, None
        else:
            return snap
        if self._succeeded:
            self._percent = 100.0
        else:
            done = sum(self._done.values())
            computed = min(_BELOW_DONE, 100.0 * done / self._total)
            self._percent = max(self._percent, computed)
        self._snapshot = ProgressSnapshot(
            round(self._percent, 2), node, self._classes.get(node) if node else None, step, max_steps
        )
        return self._snapshot

    def _set_weight(self, node_id: str, weight: float) -> None:
        self._total += weight - self._weight[node_id]
        self._weight[node_id] = weight
        if self._done.get(node_id, 0.0) > weight:
            self._done[node_id] = weight

    def _set_done(self, node_id: str, units: float) -> None:
        if units > self._done.get(node_id, 0.0):
            self._done[node_id] = units

    def _finish_inputs(self, node: str) -> None:
        """`node` runs: everything it takes input from has run (only when the node changes, not per step)."""
        pending = list(self._inputs.get(node, ()))
        seen: set[str] = set()
        while pending:
            source = pending.pop()
            if source in seen or source not in self._weight:
                continue
            seen.add(source)
            self._set_done(source, self._weight[source])
            pending.extend(self._inputs.get(source, ()))

    def _finish_current(self, node: str | None) -> None:
        if node is not None and node in self._weight:
            self._set_done(node, self._weight[node])
