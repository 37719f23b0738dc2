"""An async HTTP client for one ComfyUI backend.

One `ComfyClient` wraps one `httpx.AsyncClient`; create it in a lifecycle hook
and close it there. Every call has a timeout. Transport failures and timeouts
raise `ComfyUnreachable` (the backend is away), 5xx answers its base class
`ComfyUnavailable` (both transient); answers this client cannot
read raise `ComfyProtocolError`; a 400 from `POST /prompt` raises
`PromptValidationError` (permanent).

The client accepts what different ComfyUI versions answer: `/queue` items as
arrays (upstream) or objects, history `status.messages` as `[event, data]`
pairs (upstream) or plain strings.
"""

from __future__ import annotations

import json as _json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from comfy.catalog import Catalog
from comfy.errors import (
    ComfyProtocolError,
    ComfyResponseTooLarge,
    ComfyUnavailable,
    ComfyUnreachable,
    PromptValidationError,
)
from comfy.events import MAX_OUTPUT_FILES, Failed, OutputFile, OutputImage, failed_from, parse_output_files
from comfy.transport import MAX_BODY_EXTENSION, Http11Transport, ResponseTooLarge

__all__ = [
    "MAX_UPLOAD_BYTES",
    "ComfyClient",
    "Device",
    "HistoryEntry",
    "HistoryMessage",
    "QueueItem",
    "QueueSnapshot",
    "Submitted",
    "SystemStats",
    "UploadTooLargeError",
    "without_credentials",
]

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
"""The default bound of one `upload_image`/`upload_mask` body (ComfyUI's own default is 100 MB)."""


class UploadTooLargeError(ValueError):
    """An upload larger than the caller's bound; nothing was sent."""


def without_credentials(url: str) -> str:
    """`url` without its user and password (`http://user:secret@host:8188` → `http://host:8188`)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True, slots=True)
class Submitted:
    prompt_id: str
    number: int


@dataclass(frozen=True, slots=True)
class QueueItem:
    prompt_id: str
    number: int
    client_id: str | None = None

    @classmethod
    def parse(cls, raw: Any) -> QueueItem:
        """Accept `[number, prompt_id, prompt, extra_data, outputs]` and `{priority, prompt_id, ...}`."""
        if isinstance(raw, list | tuple) and len(raw) >= 2:
            number, prompt_id = raw[0], raw[1]
            extra = raw[3] if len(raw) > 3 else None
        elif isinstance(raw, Mapping) and "prompt_id" in raw:
            number = raw.get("priority", raw.get("number", 0))
            prompt_id = raw["prompt_id"]
            extra = raw.get("extra_data")
        else:
            raise ComfyProtocolError(f"unrecognised queue item {str(raw)[:200]!r}")
        client_id = extra.get("client_id") if isinstance(extra, Mapping) else None
        try:
            return cls(str(prompt_id), int(number), None if client_id is None else str(client_id))
        except (TypeError, ValueError) as exc:
            raise ComfyProtocolError(f"unrecognised queue item {str(raw)[:200]!r}") from exc


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    running: tuple[QueueItem, ...]
    pending: tuple[QueueItem, ...]  # in execution order (by number)

    def position(self, prompt_id: str) -> int | None:
        """0 while running, 1 for the next to run, ...; None when not in the queue."""
        if any(item.prompt_id == prompt_id for item in self.running):
            return 0
        for index, item in enumerate(self.pending):
            if item.prompt_id == prompt_id:
                return index + 1
        return None

    def item(self, prompt_id: str) -> QueueItem | None:
        """The running or pending entry of `prompt_id`, with the client id it was submitted with."""
        for item in (*self.running, *self.pending):
            if item.prompt_id == prompt_id:
                return item
        return None

    def __contains__(self, prompt_id: object) -> bool:
        return any(item.prompt_id == prompt_id for item in (*self.running, *self.pending))


@dataclass(frozen=True, slots=True)
class HistoryMessage:
    """One entry of history `status.messages`; plain-string entries become `(event, {"message": rest})`."""

    event: str
    data: Mapping[str, Any]

    @classmethod
    def parse(cls, raw: Any) -> HistoryMessage:
        if isinstance(raw, list | tuple) and raw:
            data = raw[1] if len(raw) > 1 and isinstance(raw[1], Mapping) else {}
            return cls(str(raw[0]), data)
        if isinstance(raw, str):
            event, sep, rest = raw.partition(":")
            return cls(event.strip(), {"message": rest.strip()} if sep else {})
        raise ComfyProtocolError(f"unrecognised history message {str(raw)[:200]!r}")


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """A finished (or abandoned) prompt as `GET /history/{prompt_id}` reports it."""

    prompt_id: str
    status_str: str | None
    completed: bool
    outputs: tuple[OutputFile, ...]
    messages: tuple[HistoryMessage, ...]

    @classmethod
    def parse(cls, prompt_id: str, raw: Any) -> HistoryEntry:
        if not isinstance(raw, Mapping):
            raise ComfyProtocolError(f"history entry of {prompt_id} is not an object")
        status = raw.get("status")
        status = status if isinstance(status, Mapping) else {}
        outputs_raw = raw.get("outputs")
        files: list[OutputFile] = []
        for node, out in outputs_raw.items() if isinstance(outputs_raw, Mapping) else ():
            files.extend(parse_output_files(str(node), out, limit=MAX_OUTPUT_FILES - len(files)))
        outputs = tuple(files)
        messages = tuple(HistoryMessage.parse(m) for m in status.get("messages") or ())
        status_str = status.get("status_str")
        return cls(
            prompt_id=prompt_id,
            status_str=None if status_str is None else str(status_str),
            completed=bool(status.get("completed", False)),
            outputs=outputs,
            messages=messages,
        )

    @property
    def images(self) -> tuple[OutputImage, ...]:
        """Every still or animated image of every output node, in node order (output and temp alike)."""
        return tuple(
            OutputImage(f.filename, f.subfolder, f.type) for f in self.outputs if f.kind in ("image", "animation")
        )

    def _has(self, event: str) -> bool:
        return any(m.event == event for m in self.messages)

    @property
    def succeeded(self) -> bool:
        if self.status_str is None and not self.messages:  # servers older than history `status`
            return bool(self.outputs)
        return self.status_str == "success" or (self.completed and self._has("execution_success"))

    @property
    def interrupted(self) -> bool:
        return self._has("execution_interrupted")

    @property
    def error(self) -> Failed | None:
        """The execution error, or None when the prompt succeeded or was interrupted.

        Plain-string messages carry only the exception message; node and type are then None / "".
        """
        for message in self.messages:
            if message.event == "execution_error":
                if "message" in message.data and "exception_message" not in message.data:
                    return Failed(self.prompt_id, None, None, "", str(message.data["message"]))
                return failed_from(message.data, self.prompt_id)
        if self.status_str == "error" and not self.interrupted:
            return Failed(self.prompt_id, None, None, "", "ComfyUI reported an error")
        return None


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    type: str
    index: int | None
    vram_total: int
    vram_free: int
    torch_vram_total: int = 0
    torch_vram_free: int = 0


@dataclass(frozen=True, slots=True)
class SystemStats:
    comfyui_version: str | None
    python_version: str | None
    pytorch_version: str | None
    os: str | None
    ram_total: int
    ram_free: int
    devices: tuple[Device, ...] = field(default=())

    @classmethod
    def parse(cls, raw: Any) -> SystemStats:
        if not isinstance(raw, Mapping):
            raise ComfyProtocolError("/system_stats did not answer an object")
        system = raw.get("system")
        system = system if isinstance(system, Mapping) else {}
        devices = []
        for d in raw.get("devices") or ():
            if not isinstance(d, Mapping):
                continue
            index = d.get("index")
            devices.append(
                Device(
                    name=str(d.get("name", "")),
                    type=str(d.get("type", "")),
                    index=None if index is None else int(index),
                    vram_total=int(d.get("vram_total") or 0),
                    vram_free=int(d.get("vram_free") or 0),
                    torch_vram_total=int(d.get("torch_vram_total") or 0),
                    torch_vram_free=int(d.get("torch_vram_free") or 0),
                )
            )

        def opt(key: str) -> str | None:
            value = system.get(key)
            return None if value is None else str(value)

        return cls(
            comfyui_version=opt("comfyui_version"),
            python_version=opt("python_version"),
            pytorch_version=opt("pytorch_version"),
            os=opt("os"),
            ram_total=int(system.get("ram_total") or 0),
            ram_free=int(system.get("ram_free") or 0),
            devices=tuple(devices),
        )


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _check_upload_name(name: str) -> None:
    """A plain file name: ComfyUI joins it to its input directory (and refuses `..` itself)."""
    if not name or len(name) > 255 or name != name.strip() or any(c in name for c in "/\\\x00") or name in (".", ".."):
        raise ValueError(f"{name[:100]!r} is not a plain file name for ComfyUI's input directory")


def _describe(exc: Exception) -> str:
    """A transport error for a message: its kind and the OS's words, not its request (and URL)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


class ComfyClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.display_url = without_credentials(self.base_url)  # for messages: they end up in errors
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            transport=transport if transport is not None else Http11Transport(),
            headers={"User-Agent": "safelight"},
        )

    async def __aenter__(self) -> ComfyClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- transport ---------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        ok: Iterable[int] = (200,),
        max_bytes: int | None = None,
    ) -> httpx.Response:
        extensions = None if max_bytes is None else {MAX_BODY_EXTENSION: max_bytes}
        try:
            response = await self._http.request(
                method, path, json=json, params=params, data=data, files=files, extensions=extensions
            )
        except ResponseTooLarge as exc:
            raise ComfyResponseTooLarge(f"{method} {self.display_url}{path}: {exc}") from None
        except httpx.TimeoutException as exc:
            sent = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            raise ComfyUnreachable(
                f"{method} {self.display_url}{path} timed out", sent=sent, why="no answer in time"
            ) from exc
        except httpx.TransportError as exc:
            sent = not isinstance(exc, httpx.ConnectError)
            raise ComfyUnreachable(
                f"{method} {self.display_url}{path} failed: {_describe(exc)}",
                sent=sent,
                why="connection lost" if sent else "cannot connect",
            ) from exc
        status = response.status_code
        if status in ok:
            return response
        if status >= 500 or status in (408, 429):
            raise ComfyUnavailable(f"{method} {self.display_url}{path} answered {status}", status=status, path=path)
        raise ComfyProtocolError(
            f"{method} {self.display_url}{path} answered {status}: {response.text[:300]}", status=status, path=path
        )

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise ComfyProtocolError(f"{method} {path} did not answer JSON") from exc

    # -- API ---------------------------------------------------------------------------------

    async def submit(
        self, workflow: Mapping[str, Any], *, prompt_id: str, client_id: str, number: int | None = None
    ) -> Submitted:
        """`POST /prompt` with our own prompt id. ComfyUI does not deduplicate: check history first.

        `number` places the prompt in the queue (lower runs first) instead of at its end: a prompt
        taken back from the queue and submitted again keeps its place.
        """
        body: dict[str, Any] = {"prompt": workflow, "client_id": client_id, "prompt_id": prompt_id}
        if number is not None:
            body["number"] = number
        response = await self._request("POST", "/prompt", json=body, ok=(200, 400))
        try:
            answer = response.json()
        except ValueError as exc:
            raise ComfyProtocolError(f"POST /prompt answered {response.status_code} without JSON") from exc
        if response.status_code == 400:
            raise PromptValidationError.from_response(answer)
        if not isinstance(answer, Mapping) or "prompt_id" not in answer:
            raise ComfyProtocolError(f"POST /prompt answered {str(answer)[:300]!r}")
        try:
            return Submitted(str(answer["prompt_id"]), int(answer.get("number", 0)))
        except (TypeError, ValueError) as exc:
            raise ComfyProtocolError(f"POST /prompt answered {str(answer)[:300]!r}") from exc

    async def queue(self) -> QueueSnapshot:
        raw = await self._json("GET", "/queue")
        if not isinstance(raw, Mapping):
            raise ComfyProtocolError("/queue did not answer an object")
        running = tuple(QueueItem.parse(i) for i in raw.get("queue_running") or ())
        pending = sorted((QueueItem.parse(i) for i in raw.get("queue_pending") or ()), key=lambda i: i.number)
        return QueueSnapshot(running, tuple(pending))

    async def history(self, prompt_id: str) -> HistoryEntry | None:
        """The history entry, or None while the prompt is queued, running, deleted or unknown."""
        raw = await self._json("GET", f"/history/{quote(prompt_id, safe='')}")
        if not isinstance(raw, Mapping):
            raise ComfyProtocolError("/history did not answer an object")
        entry = raw.get(prompt_id)
        return None if entry is None else HistoryEntry.parse(prompt_id, entry)

    async def view(self, image: OutputImage | OutputFile, *, max_bytes: int | None = None) -> bytes:
        """The bytes of an output file, through `GET /view` (never the host path).

        Larger than `max_bytes` (default: the transport's limit): ComfyResponseTooLarge, before the
        body is read whole.
        """
        params = {"filename": image.filename, "subfolder": image.subfolder, "type": image.type}
        try:
            response = await self._request("GET", "/view", params=params, max_bytes=max_bytes)
        except ComfyResponseTooLarge:
            raise  # the caller names the output
        except ComfyProtocolError as exc:
            raise ComfyProtocolError(f"output {image.type}/{image.subfolder}/{image.filename}: {exc}") from exc
        return response.content

    async def has_input(self, name: str) -> bool:
        """Whether ComfyUI's input directory holds `name` (`HEAD /view?type=input`: 200 or 404).

        `name` is a file name, or `subfolder/name` as `upload_image` returns it for a subfolder.
        """
        subfolder, _, filename = name.rpartition("/")
        _check_upload_name(filename)
        if subfolder:
            for part in subfolder.split("/"):
                _check_upload_name(part)
        params = {"filename": filename, "subfolder": subfolder, "type": "input"}
        response = await self._request("HEAD", "/view", params=params, ok=(200, 404, 405))
        if response.status_code == 405:  # a proxy in front that knows no HEAD: ask with GET
            response = await self._request("GET", "/view", params=params, ok=(200, 404))
        return response.status_code == 200

    async def upload_image(
        self,
        name: str,
        data: bytes,
        *,
        overwrite: bool = True,
        type: str = "input",
        max_bytes: int = MAX_UPLOAD_BYTES,
    ) -> str:
        """`POST /upload/image` (multipart `image`, `overwrite`, `type`): the name ComfyUI stored the
        file under, as a loader node's input expects it (`subfolder/name` when it used a subfolder).

        Without `overwrite` ComfyUI keeps an existing file of other content and answers another name.
        """
        return await self._upload("/upload/image", name, data, {"overwrite": _flag(overwrite), "type": type}, max_bytes)

    async def upload_mask(
        self,
        name: str,
        data: bytes,
        original_ref: Mapping[str, str],
        *,
        overwrite: bool = True,
        max_bytes: int = MAX_UPLOAD_BYTES,
    ) -> str:
        """`POST /upload/mask`: ComfyUI writes `data`'s alpha into a copy of the image `original_ref`
        (`{"filename", "subfolder"?, "type"?}`) names, stored as `name`; returns the stored name."""
        fields = {"overwrite": _flag(overwrite), "type": "input", "original_ref": _json.dumps(dict(original_ref))}
        return await self._upload("/upload/mask", name, data, fields, max_bytes)

    async def _upload(self, path: str, name: str, data: bytes, fields: dict[str, str], max_bytes: int) -> str:
        _check_upload_name(name)
        if len(data) > max_bytes:
            raise UploadTooLargeError(f"{name}: {len(data)} bytes is more than the upload limit of {max_bytes}")
        files = {"image": (name, data, "application/octet-stream")}
        answer = await self._json("POST", path, data=fields, files=files)
        if not isinstance(answer, Mapping) or not isinstance(answer.get("name"), str) or not answer["name"]:
            raise ComfyProtocolError(f"POST {path} answered {str(answer)[:300]!r}")
        subfolder = answer.get("subfolder")
        return f"{subfolder}/{answer['name']}" if isinstance(subfolder, str) and subfolder else str(answer["name"])

    async def delete_from_queue(self, prompt_ids: Sequence[str]) -> None:
        """Remove pending prompts; a running one is not affected (interrupt it)."""
        await self._request("POST", "/queue", json={"delete": list(prompt_ids)})

    async def clear_queue(self) -> None:
        await self._request("POST", "/queue", json={"clear": True})

    async def interrupt(self, prompt_id: str | None = None) -> None:
        """Interrupt `prompt_id` if it is the one running (None: whatever is running)."""
        await self._request("POST", "/interrupt", json={} if prompt_id is None else {"prompt_id": prompt_id})

    async def object_info(self) -> Catalog:
        raw = await self._json("GET", "/object_info")
        if not isinstance(raw, Mapping):
            raise ComfyProtocolError("/object_info did not answer an object")
        return Catalog.from_object_info(raw)

    async def system_stats(self) -> SystemStats:
        return SystemStats.parse(await self._json("GET", "/system_stats"))
