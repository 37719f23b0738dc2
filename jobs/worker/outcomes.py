"""How a run of a generation ends, as exceptions the parts raise and `GenerationRun.execute` records."""

from __future__ import annotations

from comfy.events import Failed

__all__ = ["Cancelled", "Concluded", "Lost", "Permanent", "Transient", "failure_of"]


class Transient(Exception):
    """Worth another attempt: backend down, socket lost without a result, prompt vanished."""


class Permanent(Exception):
    """Another attempt would fail the same way (`retryable`: a user's retry later may not)."""

    def __init__(
        self, code: str, message: str, *, node: str | None = None, input: str | None = None, retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.node = node
        self.input = input
        self.retryable = retryable


class Cancelled(Exception):
    """The user cancelled: the generation ends CANCELLED."""


class Lost(Exception):
    """The generation was deleted or another job took it over: stop without writing."""


class Concluded(Exception):
    """A check of the backend's queue and history found the prompt's end and recorded it: stop following."""


def failure_of(event: Failed) -> Permanent:
    """ComfyUI's execution error, as the generation's error."""
    node = event.node_id if event.node_type is None else f"{event.node_id} ({event.node_type})"
    return Permanent("EXECUTION_ERROR", f"{event.exception_type}: {event.exception_message}", node=node)
