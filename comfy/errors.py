"""Errors raised while talking to ComfyUI.

Callers decide between retrying and failing for good from the class alone:
`ComfyUnavailable` is transient (`retryable = True`), everything else is
permanent. `PromptValidationError` carries ComfyUI's own verdict on a
submitted workflow, with each offending node and input named.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ComfyError",
    "ComfyProtocolError",
    "ComfyUnavailable",
    "ComfyUnreachable",
    "NodeError",
    "PromptValidationError",
]


class ComfyError(Exception):
    """Base class of every error this package raises about a ComfyUI backend.

    `status` and `path` are set when the backend answered an HTTP status it should not have.
    """

    retryable: bool = False

    def __init__(self, message: str = "", *, status: int | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.path = path

    @property
    def reason(self) -> str:
        """What went wrong in a few words, for people (the System page): no exception text, no URL."""
        if isinstance(self, ComfyUnreachable):
            return f"unreachable ({self.why})"
        if self.status is not None:
            return f"HTTP {self.status} from {self.path or '/'}"
        if isinstance(self, ComfyProtocolError):
            return f"unexpected answer: {str(self)[:200]}"
        return str(self)[:200]


class ComfyUnavailable(ComfyError):
    """The backend could not be reached or answered 5xx; trying again later may work."""

    retryable = True


class ComfyUnreachable(ComfyUnavailable):
    """No answer at all (connection refused or reset, timeout, socket closed): the backend is away,
    as opposed to answering 5xx. Waiting for it to come back is not a failed attempt.

    `sent` is False when the request cannot have reached the backend (no connection was made), so a
    submit that failed this way certainly queued nothing. `why` says it in a few words, for people.
    """

    def __init__(self, message: str, *, sent: bool = True, why: str = "no answer") -> None:
        super().__init__(message)
        self.sent = sent
        self.why = why


class ComfyProtocolError(ComfyError):
    """The backend answered something this client does not understand."""


class ComfyResponseTooLarge(ComfyProtocolError):
    """The backend's answer is larger than the request accepts; it was not read whole."""


@dataclass(frozen=True, slots=True)
class NodeError:
    """One problem ComfyUI found in one node of a submitted workflow."""

    node_id: str | None
    class_type: str | None
    input_name: str | None
    reason: str

    @property
    def node_label(self) -> str | None:
        """The node as a generation's error shows it: `'2 (KSampler)'`, `'2'`, or None."""
        if self.node_id is None:
            return self.class_type
        return self.node_id if self.class_type is None else f"{self.node_id} ({self.class_type})"


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
        if not node_errors:
            whole = _whole_prompt_node(error, extra, message)
            if whole is not None:
                node_errors.append(whole)
        return cls(error_type, message, node_errors)

    @property
    def first(self) -> NodeError | None:
        """The first node error, the one a generation's structured error names."""
        return self.node_errors[0] if self.node_errors else None


# Both dialects put the node in `details` ("Node ID '#2'") when a node's class is unknown or missing;
# the packaging build also names it in extra_info, upstream leaves extra_info empty and names the
# class only in the message ("Cannot execute because node NoSuchNodeXYZ does not exist.").
_DETAILS_NODE = re.compile(r"^Node ID '#(?P<id>[^']{1,200})'$")
_MESSAGE_CLASS = re.compile(r"^Cannot execute because node (?P<cls>\S{1,200}) does not exist\.?$")


def _whole_prompt_node(error: Mapping[str, Any], extra: Mapping[str, Any], message: str) -> NodeError | None:
    """The node a prompt-level error is about (unknown or missing class_type), when it names one."""
    details = error.get("details")
    details = details if isinstance(details, str) else ""
    node_id = _opt_str(extra.get("node_id"))
    class_type = _opt_str(extra.get("class_type"))
    if node_id is None:
        match = _DETAILS_NODE.match(details.strip())
        node_id = None if match is None else match.group("id")
    if class_type is None:
        match = _MESSAGE_CLASS.match(message.strip())
        class_type = None if match is None else match.group("cls")
    if node_id is None and class_type is None:
        return None
    reason = message if not details else f"{message} ({details})"
    return NodeError(node_id=node_id, class_type=class_type, input_name=None, reason=reason)


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
