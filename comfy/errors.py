"""Errors raised while talking to ComfyUI.

Callers decide between retrying and failing for good from the class alone:
`ComfyUnavailable` is transient (`retryable = True`), everything else is
permanent. `PromptValidationError` carries ComfyUI's own verdict on a
submitted workflow, with each offending node and input named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ComfyError",
    "ComfyProtocolError",
    "ComfyUnavailable",
    "NodeError",
    "PromptValidationError",
]


class ComfyError(Exception):
    """Base class of every error this package raises about a ComfyUI backend."""

    retryable: bool = False


class ComfyUnavailable(ComfyError):
    """The backend could not be reached or answered 5xx; trying again later may work."""

    retryable = True


class ComfyProtocolError(ComfyError):
    """The backend answered something this client does not understand."""


@dataclass(frozen=True, slots=True)
class NodeError:
    """One problem ComfyUI found in one node of a submitted workflow."""

    node_id: str | None
    class_type: str | None
    input_name: str | None
    reason: str


class PromptValidationError(ComfyError):
    """`POST /prompt` answered 400: the workflow is wrong and resubmitting will not help."""

    def __init__(self, error_type: str, message: str, node_errors: list[NodeError]) -> None:
        self.error_type = error_type
        self.message = message
        self.node_errors = node_errors
        detail = "; ".join(_describe(e) for e in node_errors)
        super().__init__(f"{error_type}: {message}" + (f" ({detail})" if detail else ""))

    @classmethod
    def from_response(cls, body: Any) -> PromptValidationError:
        """Build from a 400 body of `POST /prompt` (both `error` and `node_errors` are read)."""
        if not isinstance(body, Mapping):
            return cls("invalid_prompt", str(body), [])
        error = body.get("error")
        if isinstance(error, str):  # very old servers answer {"error": "...", "node_errors": {...}}
            error = {"type": "invalid_prompt", "message": error}
        if not isinstance(error, Mapping):
            error = {}
        error_type = str(error.get("type") or "invalid_prompt")
        message = str(error.get("message") or "ComfyUI rejected the prompt")
        extra = error.get("extra_info")
        extra = extra if isinstance(extra, Mapping) else {}

        node_errors: list[NodeError] = []
        raw_nodes = body.get("node_errors")
        if not (isinstance(raw_nodes, Mapping) and raw_nodes):
            raw_nodes = extra.get("node_errors")
        if isinstance(raw_nodes, Mapping):
            node_errors.extend(_parse_node_errors(raw_nodes))
        if not node_errors and ("node_id" in extra or "class_type" in extra):
            # missing_node_type names the node in extra_info instead of node_errors.
            details = error.get("details")
            reason = message if not details else f"{message} ({details})"
            node_errors.append(
                NodeError(
                    node_id=_opt_str(extra.get("node_id")),
                    class_type=_opt_str(extra.get("class_type")),
                    input_name=None,
                    reason=reason,
                )
            )
        return cls(error_type, message, node_errors)


def _parse_node_errors(raw: Mapping[str, Any]) -> list[NodeError]:
    out: list[NodeError] = []
    for node_id, entry in raw.items():
        if not isinstance(entry, Mapping):
            continue
        class_type = _opt_str(entry.get("class_type"))
        errors = entry.get("errors")
        if not isinstance(errors, list) or not errors:
            out.append(NodeError(str(node_id), class_type, None, "invalid node"))
            continue
        for err in errors:
            if not isinstance(err, Mapping):
                continue
            info = err.get("extra_info")
            input_name = _opt_str(info.get("input_name")) if isinstance(info, Mapping) else None
            message = str(err.get("message") or err.get("type") or "invalid")
            details = err.get("details")
            reason = f"{message}: {details}" if details else message
            out.append(NodeError(str(node_id), class_type, input_name, reason))
    return out


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _describe(error: NodeError) -> str:
    where = f"node {error.node_id}" if error.node_id else "workflow"
    if error.class_type:
        where += f" ({error.class_type})"
    if error.input_name:
        where += f" input {error.input_name}"
    return f"{where}: {error.reason}"
