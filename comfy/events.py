"""ComfyUI's websocket messages as typed, immutable events.

`parse_message` turns one decoded JSON message into an event and
`parse_binary` turns one binary frame into a `Preview`. Both sit on the hot
path of the progress relay, so they are plain functions over dicts, dispatched
by message type through a dict, with no validation library in between.

Messages without a `prompt_id` (an `executing` replayed to a client that
reconnected, type-1 preview frames) are attributed to `default_prompt_id`, the
prompt the caller knows to be executing; when there is none they are dropped.
Messages this client has no use for (`feature_flags`, `crystools.monitor`, ...)
parse to None.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from comfy.errors import ComfyProtocolError

__all__ = [
    "ComfyEvent",
    "Disconnected",
    "ExecutionStarted",
    "Failed",
    "Finished",
    "Interrupted",
    "NodeExecuting",
    "NodeOutput",
    "NodeProgress",
    "NodesCached",
    "OutputFile",
    "OutputImage",
    "OutputKind",
    "Preview",
    "Progress",
    "ProgressState",
    "QueueStatus",
    "Reconnected",
    "Succeeded",
    "parse_binary",
    "parse_message",
    "parse_output_files",
]


@dataclass(frozen=True, slots=True)
class ExecutionStarted:
    prompt_id: str


@dataclass(frozen=True, slots=True)
class NodesCached:
    """Nodes whose results came from the cache; they will not execute."""

    prompt_id: str
    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NodeExecuting:
    prompt_id: str
    node: str


@dataclass(frozen=True, slots=True)
class Progress:
    """Step `value` of `max` of one node (a sampler sends one per step).

    `emitted_at` is the sender's wall-clock time (`safelight_ts`, stamped by
    the fake ComfyUI for latency benchmarks); None from a real ComfyUI.
    """

    prompt_id: str
    node: str
    value: int
    max: int
    emitted_at: float | None = None


@dataclass(frozen=True, slots=True)
class NodeProgress:
    value: float
    max: float
    state: str  # "pending" | "running" | "finished" | "error"


@dataclass(frozen=True, slots=True)
class ProgressState:
    prompt_id: str
    nodes: Mapping[str, NodeProgress]


@dataclass(frozen=True, slots=True)
class Preview:
    """A preview image; `prompt_id`/`node` are None when the frame did not say (type 1)."""

    prompt_id: str | None
    node: str | None
    image: bytes
    mime: str


@dataclass(frozen=True, slots=True)
class OutputImage:
    """An output file on the ComfyUI host, fetched through `GET /view`."""

    filename: str
    subfolder: str
    type: str


OutputKind = Literal["image", "animation", "video", "audio", "text"]

MAX_OUTPUT_FILES: Final = 1000
MAX_OUTPUT_NAME: Final = 255
MAX_OUTPUT_TEXT_BYTES: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class OutputFile:
    """One output of one node: a file on the ComfyUI host (fetched through `GET /view`) or a text.

    `batch_index` is the position in that node's list of its kind; a text output has no file
    (`filename` is empty) and carries `text` (at most 64 KB of UTF-8, cut at a character boundary).
    """

    node: str
    filename: str
    subfolder: str
    type: str
    kind: OutputKind
    batch_index: int
    text: str | None = None


@dataclass(frozen=True, slots=True)
class NodeOutput:
    """`executed`: `images` are the node's `images` entries (still or animated); `files` every output."""

    prompt_id: str
    node: str
    images: tuple[OutputImage, ...]
    files: tuple[OutputFile, ...] = ()


@dataclass(frozen=True, slots=True)
class Succeeded:
    prompt_id: str


@dataclass(frozen=True, slots=True)
class Failed:
    prompt_id: str
    node_id: str | None
    node_type: str | None
    exception_type: str
    exception_message: str
    traceback: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Interrupted:
    prompt_id: str
    node_id: str | None


@dataclass(frozen=True, slots=True)
class Finished:
    """`executing {node: null}`: ComfyUI is done with this prompt, whatever the outcome."""

    prompt_id: str


@dataclass(frozen=True, slots=True)
class QueueStatus:
    queue_remaining: int


@dataclass(frozen=True, slots=True)
class Reconnected:
    """The socket was down for a while: events may be missing, reconcile from /history and /queue."""


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The socket just closed (it reconnects by itself): no live events until `Reconnected`.

    Sent the moment the close is seen, so a consumer can ask /queue and /history at once instead
    of waiting for a silence to last.
    """


ComfyEvent = (
    ExecutionStarted
    | NodesCached
    | NodeExecuting
    | Progress
    | ProgressState
    | Preview
    | NodeOutput
    | Succeeded
    | Failed
    | Interrupted
    | Finished
    | QueueStatus
    | Reconnected
    | Disconnected
)

_Parser = Callable[[dict[str, Any], str | None], ComfyEvent | None]


def _pid(data: dict[str, Any], default: str | None) -> str | None:
    pid = data.get("prompt_id")
    return default if pid is None else pid


def _execution_start(data: dict[str, Any], default: str | None) -> ComfyEvent | None:
    pid = _pid(data, default)
    return None if pid is None else ExecutionStarted(pid)


def _execution_cached(data: dict[str, Any], default: str | None) -> ComfyEvent | None:
    pid = _pid(data, default)
    return None if pid is None else NodesCached(pid, tuple(str(n) for n in data.get("nodes") or ()))


def _executing(data: dict[str, Any], default: str | None) -> ComfyEvent | None:
    pid = _pid(data, default)
    if pid is None:
        return None
    node = data.get("node")
    if node is None:
        return Finished(pid)
    return NodeExecuting(pid, str(node))


def _progress(data: dict[str, Any], default: str | None) -> ComfyEvent | None:
    pid = _pid(data, default)
    if pid is None:
        return None
    node = data.get("node")
    ts = data.get("safelight_ts")
    return Progress(
        pid,
        "" if node is None else str(node),
        int(data["value"]),
        int(data["max"]),
        None if ts is None else float(ts),
    )


def _progress_state(data: dict[str, Any], default: str | None) -> ComfyEvent | None:
    pid = _pid(data, default)
    if pid is None:
        return None
    nodes = {
        str(node_id): NodeProgress(float(n.get("value", 0.0)), float(n.get("max", 1.0)), str(n.get("state")))
        for node_id, n in (data.get("nodes") or {}).items()
    }
    return ProgressState(pid, nodes)


def parse_images(output: Any) -> tuple[OutputImage, ...]:
    """The images of one node's output (`{"images": [{filename, subfolder, type}]}`); abs_path is ignored."""
    if not isinstance(output, Mapping):
        return ()
    images = output.get("images")
    if not isinstance(images, list):
        return ()
    return tuple(
        OutputImage(str(i["filename"]), str(i.get("subfolder") or ""), str(i.get("type") or "output"))
        for i in images
        if isinstance(i, Mapping) and "filename" in i
    )


_VIDEO_SUFFIXES: Final = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v")


def parse_output_files(node: str, output: Any, *, limit: int = MAX_OUTPUT_FILES) -> tuple[OutputFile, ...]:
    """Every output of one node's `output` object, in key order: `images` (+ `animated` flags),
    `gifs` (video-combine nodes), `video`/`videos`, `audio`, then `text`. Unknown keys are ignored.

    Raises ComfyProtocolError past `limit` files or for a file name over 255 characters: either
    is a backend this client will not follow, not an output to store.
    """
    if not isinstance(output, Mapping):
        return ()
    files: list[OutputFile] = []

    def add(file: OutputFile) -> None:
        if len(files) >= limit:
            raise ComfyProtocolError(f"node {node} reports more than {limit} output files")
        files.append(file)

    animated = output.get("animated")
    flags = list(animated) if isinstance(animated, list | tuple) else []
    for index, entry in enumerate(_entries(output.get("images"))):
        flag = flags[index] if index < len(flags) else (flags[0] if len(flags) == 1 else False)
        name = _filename(node, entry)
        kind: OutputKind = "image"
        if name.lower().endswith(_VIDEO_SUFFIXES):
            kind = "video"
        elif flag is True:
            kind = "animation"
        add(_file(node, entry, name, kind, index))
    for index, entry in enumerate(_entries(output.get("gifs"))):
        name = _filename(node, entry)
        fmt = str(entry.get("format") or "")
        video = fmt.startswith("video/") or (not fmt and name.lower().endswith(_VIDEO_SUFFIXES))
        add(_file(node, entry, name, "video" if video else "animation", index))
    for key, kind in (("video", "video"), ("videos", "video"), ("audio", "audio")):
        for index, entry in enumerate(_entries(output.get(key))):
            add(_file(node, entry, _filename(node, entry), kind, index))
    texts = output.get("text")
    if isinstance(texts, str):
        texts = [texts]
    if isinstance(texts, list | tuple):
        for index, text in enumerate(t for t in texts if isinstance(t, str)):
            add(OutputFile(node, "", "", "", "text", index, _cut_utf8(text, MAX_OUTPUT_TEXT_BYTES)))
    return tuple(files)


def _entries(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list | tuple):
        return []
    return [e for e in value if isinstance(e, Mapping) and isinstance(e.get("filename"), str) and e["filename"]]


def _filename(node: str, entry: Mapping[str, Any]) -> str:
    name = str(entry["filename"])
    if len(name) > MAX_OUTPUT_NAME or len(str(entry.get("subfolder") or "")) > MAX_OUTPUT_NAME:
        raise ComfyProtocolError(f"node {node} reports an output file name of {len(name)} characters")
    return name


def _file(node: str, entry: Mapping[str, Any], name: str, kind: OutputKind, index: int) -> OutputFile:
    return OutputFile(node, name, str(entry.get("subfolder") or ""), str(entry.get("type") or "output"), kind, index)


def _cut_utf8(text: str, limit: int) -> str:
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", "ignore")


def _executed(data: dict[str, Any], default: str | None) -> ComfyEvent | None:
    pid = _pid(data, default)
    if pid is None:
        return None
    node = str(data["node"])
    output = data.get("output")
    return NodeOutput(pid, node, parse_images(output), parse_output_files(node, output))


def _execution_success(data: dict[str, Any], default: str | None) -> ComfyEvent | None:
    pid = _pid(data, default)
    return None if pid is None else Succeeded(pid)


def failed_from(data: Mapping[str, Any], prompt_id: str) -> Failed:
    """A `Failed` from an `execution_error` payload (websocket or history)."""
    node_id = data.get("node_id")
    node_type = data.get("node_type")
    return Failed(
        prompt_id=prompt_id,
        node_id=None if node_id is None else str(node_id),
        node_type=None if node_type is None else str(node_type),
        exception_type=str(data.get("exception_type") or ""),
        exception_message=str(data.get("exception_message") or ""),
        traceback=tuple(str(line) for line in data.get("traceback") or ()),
    )


def _execution_error(data: dict[str, Any], default: str | None) -> ComfyEvent | None:
    pid = _pid(data, default)
    return None if pid is None else failed_from(data, pid)


def _execution_interrupted(data: dict[str, Any], default: str | None) -> ComfyEvent | None:
    pid = _pid(data, default)
    if pid is None:
        return None
    node_id = data.get("node_id")
    return Interrupted(pid, None if node_id is None else str(node_id))


def _status(data: dict[str, Any], default: str | None) -> ComfyEvent | None:
    status = data.get("status") or {}
    remaining = (status.get("exec_info") or {}).get("queue_remaining")
    return None if remaining is None else QueueStatus(int(remaining))


_PARSERS: dict[str, _Parser] = {
    "execution_start": _execution_start,
    "execution_cached": _execution_cached,
    "executing": _executing,
    "progress": _progress,
    "progress_state": _progress_state,
    "executed": _executed,
    "execution_success": _execution_success,
    "execution_error": _execution_error,
    "execution_interrupted": _execution_interrupted,
    "status": _status,
}


def parse_message(message: dict[str, Any], default_prompt_id: str | None = None) -> ComfyEvent | None:
    """One decoded text message → an event, or None when it is of no interest.

    Raises ComfyProtocolError when a message of a known type is malformed.
    """
    parser = _PARSERS.get(message.get("type"))  # type: ignore[arg-type]
    if parser is None:
        return None
    data = message.get("data")
    if not isinstance(data, dict):
        raise ComfyProtocolError(f"{message.get('type')} message without a data object")
    try:
        return parser(data, default_prompt_id)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ComfyProtocolError(f"malformed {message.get('type')} message: {exc!r}") from exc


PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4
_FORMATS = {1: "image/jpeg", 2: "image/png"}


def parse_binary(frame: bytes, default_prompt_id: str | None = None) -> Preview | None:
    """One binary frame → a Preview, or None for frame types other than previews.

    Type 1: 4-byte big-endian event type, 4-byte format (1 JPEG, 2 PNG), image.
    Type 4: event type, 4-byte metadata length, metadata JSON, image.
    """
    if len(frame) < 8:
        raise ComfyProtocolError(f"binary frame of {len(frame)} bytes is too short")
    event_type = int.from_bytes(frame[0:4], "big")
    if event_type == PREVIEW_IMAGE:
        fmt = int.from_bytes(frame[4:8], "big")
        return Preview(default_prompt_id, None, frame[8:], _FORMATS.get(fmt, "image/jpeg"))
    if event_type == PREVIEW_IMAGE_WITH_METADATA:
        size = int.from_bytes(frame[4:8], "big")
        end = 8 + size
        if len(frame) < end:
            raise ComfyProtocolError("preview metadata runs past the end of the frame")
        try:
            meta = json.loads(frame[8:end])
        except ValueError as exc:
            raise ComfyProtocolError(f"preview metadata is not JSON: {exc}") from exc
        if not isinstance(meta, dict):
            raise ComfyProtocolError("preview metadata is not an object")
        pid = meta.get("prompt_id")
        node = meta.get("node_id")
        return Preview(
            default_prompt_id if pid is None else str(pid),
            None if node is None else str(node),
            frame[end:],
            str(meta.get("image_type") or "image/jpeg"),
        )
    return None
