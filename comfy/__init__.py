"""ComfyUI integration: HTTP client, shared websocket, typed events, progress and workflow templates."""

from comfy.catalog import Catalog
from comfy.client import ComfyClient, HistoryEntry, QueueItem, QueueSnapshot, Submitted, SystemStats
from comfy.errors import ComfyError, ComfyProtocolError, ComfyUnavailable, NodeError, PromptValidationError
from comfy.events import ComfyEvent, parse_binary, parse_message
from comfy.progress import ProgressSnapshot, ProgressTracker
from comfy.socket import ComfySocket, PromptEvents
from comfy.templates import (
    FieldError,
    Limits,
    ParamValidationError,
    Template,
    ValidatedParams,
    build_workflow,
    load_templates,
    validate_params,
)

__all__ = [
    "Catalog",
    "ComfyClient",
    "ComfyError",
    "ComfyEvent",
    "ComfyProtocolError",
    "ComfySocket",
    "ComfyUnavailable",
    "FieldError",
    "HistoryEntry",
    "Limits",
    "NodeError",
    "ParamValidationError",
    "ProgressSnapshot",
    "ProgressTracker",
    "PromptEvents",
    "PromptValidationError",
    "QueueItem",
    "QueueSnapshot",
    "Submitted",
    "SystemStats",
    "Template",
    "ValidatedParams",
    "build_workflow",
    "load_templates",
    "parse_binary",
    "parse_message",
    "validate_params",
]
