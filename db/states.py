"""The generation lifecycle: one status vocabulary and the one place that decides transitions.

DB, worker, API and (through the schema) the frontend all use `Status`. Every
write that changes a status goes through `allowed_sources()`, and the UPDATE
that applies it filters on those sources, so two concurrent writers cannot move
a generation backwards (a late worker write after CANCELLED simply matches no
row).
"""

from __future__ import annotations

import enum

__all__ = ["ACTIVE", "TERMINAL", "IllegalTransition", "Phase", "Status", "allowed_sources", "can_transition"]


class Status(enum.Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    CANCELLING = "CANCELLING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


class Phase(enum.Enum):
    """What a generation is doing right now, finer than its status (for progress bars)."""

    WAITING = "WAITING"  # in Safelight's queue, no worker yet
    SUBMITTING = "SUBMITTING"  # a worker is building and submitting the workflow
    BACKEND_QUEUE = "BACKEND_QUEUE"  # accepted by ComfyUI, waiting behind other prompts
    EXECUTING = "EXECUTING"  # ComfyUI is running its nodes
    SAVING = "SAVING"  # fetching and storing output images
    RETRY_WAIT = "RETRY_WAIT"  # a transient failure; the next attempt is scheduled
    BACKEND_WAIT = "BACKEND_WAIT"  # no ComfyUI backend reachable; waiting for one (not an attempt)
    UNTRACKED = "UNTRACKED"  # ComfyUI runs the prompt, but its live events cannot be had
    DONE = "DONE"


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})
ACTIVE = frozenset({Status.QUEUED, Status.RUNNING, Status.CANCELLING})

_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.QUEUED: frozenset({Status.RUNNING, Status.CANCELLED}),
    # RUNNING -> QUEUED is a scheduled retry after a transient failure.
    Status.RUNNING: frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLING, Status.CANCELLED, Status.QUEUED}),
    Status.CANCELLING: frozenset({Status.CANCELLED}),
    Status.SUCCEEDED: frozenset(),
    # A user may retry a failed or cancelled generation: a new attempt on the same record.
    Status.FAILED: frozenset({Status.QUEUED}),
    Status.CANCELLED: frozenset({Status.QUEUED}),
}


class IllegalTransition(Exception):
    """A status change the lifecycle does not allow from the generation's current status."""

    def __init__(self, current: Status, target: Status) -> None:
        super().__init__(f"cannot go from {current.value} to {target.value}")
        self.current = current
        self.target = target


def can_transition(current: Status, target: Status) -> bool:
    return target in _TRANSITIONS[current]


def allowed_sources(target: Status) -> frozenset[Status]:
    """Every status from which `target` may be reached."""
    return frozenset(source for source, targets in _TRANSITIONS.items() if target in targets)
