"""HTTP routes of uploaded inputs: `POST /inputs` (multipart, field `file`), `GET /inputs/<id>`, `/inputs/<id>/thumb`.

Authenticated as GraphQL over HTTP is: `Authorization: Bearer <token>`, or in dev mode nothing from a
loopback client. Dev mode's Host check (graph/guards.py `DevHostGuard`) covers these routes as every
route; a browser's cross-origin POST is refused by its Origin (the rule websockets follow), because
a form post needs no preflight and in dev mode a loopback request without a token is the dev admin.

The body is read as it streams, never past the limit: Content-Length first when there is one, then
every chunk counted; the file part is collected by python-multipart's streaming parser into one
buffer of at most `SAFELIGHT_MAX_INPUT_BYTES` (Starlette's `request.form()` would spool a file part of
any size to disk). The app-wide body limit (graph/guards.py `BodyLimit`) leaves `POST /inputs` to
this module. Every refusal is `{"error": {"code", "message"}}` and stores nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from db import models
from db.inputs import input_by_id
from graph.auth import Auth
from graph.guards import allowed_origin
from graph.state import AppState
from jobs.service.inputs import InputRejected, Intake
from settings import Settings

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

__all__ = ["UPLOAD_PATH", "input_routes", "input_urls"]

log = logging.getLogger(__name__)

UPLOAD_PATH = "/inputs"
# A multipart body is the file plus its part headers, the boundaries and a few small fields.
_OVERHEAD_BYTES = 64 * 1024
_MAX_FIELDS = 8  # parts other than `file`, each at most _MAX_FIELD_BYTES (read and dropped)
_MAX_FIELD_BYTES = 1024
_MAX_BODIES_IN_FLIGHT = 8  # uploads one process reads at once (each may hold the byte limit in memory)
_THUMB_SIZE = 256
# Private: the answer depends on who asks; an input's bytes never change under its id.
_CACHE = "private, max-age=31536000, immutable"


def input_urls(base_url: str, input_id: uuid.UUID) -> tuple[str, str]:
    """(url, thumbnail url) of an input."""
    return f"{base_url}{UPLOAD_PATH}/{input_id}", f"{base_url}{UPLOAD_PATH}/{input_id}/thumb"


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


async def _viewer(request: Request) -> models.User | None:
    auth: Auth = request.app.state.auth
    return await auth.request_viewer(request)


class _FilePart:
    """The `file` part of a multipart body, collected by python-multipart's streaming parser, bounded."""

    def __init__(self, boundary: bytes, *, max_file_bytes: int) -> None:
        self.max_file_bytes = max_file_bytes
        self.data = bytearray()
        self.filename = ""
        self.found = False
        self.ended = False
        self._fields = 0
        self._field_bytes = 0
        self._in_file = False
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        callbacks: MultipartCallbacks = {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._header_name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_end": self._end,
        }
        self.parser = MultipartParser(boundary, callbacks)

    def _part_begin(self) -> None:
        self._headers = {}
        self._in_file = False
        self._field_bytes = 0

    def _header_end(self) -> None:
        self._headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if name == b"file":
            if self.found:
                raise _Refused(400, "BAD_REQUEST", "one file per upload (field `file`)")
            self.found = self._in_file = True
            self.filename = options.get(b"filename", b"").decode("utf-8", "replace")
            return
        self._fields += 1
        if self._fields > _MAX_FIELDS:
            raise _Refused(400, "BAD_REQUEST", f"at most {_MAX_FIELDS} form fields besides `file`")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            if len(self.data) + (end - start) > self.max_file_bytes:
                raise _Refused(413, "TOO_LARGE", _too_large(self.max_file_bytes))
            self.data.extend(data[start:end])
            return
        self._field_bytes += end - start
        if self._field_bytes > _MAX_FIELD_BYTES:
            raise _Refused(400, "BAD_REQUEST", f"form fields other than `file` are at most {_MAX_FIELD_BYTES} bytes")

    def _end(self) -> None:
        self.ended = True


def _too_large(limit: int) -> str:
    return f"the file is over the limit of {limit:,} bytes (SAFELIGHT_MAX_INPUT_BYTES)"


async def _read_file(request: Request, *, max_file_bytes: int) -> _FilePart:
    """The upload's file part, read as the body streams; _Refused as soon as a limit is passed."""
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary or len(boundary) > 70:
        raise _Refused(400, "BAD_REQUEST", "send multipart/form-data with the image in the field `file`")
    max_body = max_file_bytes + _OVERHEAD_BYTES
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise _Refused(400, "BAD_REQUEST", "Content-Length is not a number")
        if int(length) > max_body:
            raise _Refused(413, "TOO_LARGE", _too_large(max_file_bytes))
    part = _FilePart(boundary, max_file_bytes=max_file_bytes)
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_body:
                raise _Refused(413, "TOO_LARGE", _too_large(max_file_bytes))
            if chunk:
                part.parser.write(chunk)
        part.parser.finalize()
    except FormParserError as exc:
        raise _Refused(400, "BAD_REQUEST", f"malformed multipart body ({exc})") from None
    except ClientDisconnect:
        raise _Refused(400, "BAD_REQUEST", "the client went away before the body ended") from None
    if not part.ended:
        raise _Refused(400, "BAD_REQUEST", "the multipart body ends before its closing boundary")
    if not part.found:
        raise _Refused(400, "BAD_REQUEST", "no field `file` in the form")
    if not part.data:
        raise _Refused(400, "NOT_AN_IMAGE", "the file is empty")
    return part


class _Uploads:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.origins = (*settings.cors_origins, *((settings.public_url,) if settings.public_url else ()))
        self._intake: Intake | None = None
        self._reading = 0

    def intake(self, state: AppState) -> Intake:
        """Built on the first upload, from the lifespan's state (nothing is built when routes are)."""
        if self._intake is None or self._intake.sessions is not state.sessions:
            self._intake = Intake(
                sessions=state.sessions,
                redis=state.redis,
                keys=state.keys,
                store=state.store,
                max_pixels=self.settings.max_input_pixels,
                uploads_per_hour=self.settings.max_input_uploads_per_hour,
            )
        return self._intake

    async def upload(self, request: Request) -> Response:
        headers = request.headers
        if not allowed_origin(headers.get("origin"), host=headers.get("host"), allowed=self.origins):
            return _error(403, "FORBIDDEN", "uploads from this origin are not allowed")
        viewer = await _viewer(request)
        if viewer is None:
            return _error(401, "UNAUTHENTICATED", "authentication required: send a bearer API token")
        state: AppState = request.app.state.safelight
        intake = self.intake(state)
        if self._reading >= _MAX_BODIES_IN_FLIGHT:
            return _error(429, "RATE_LIMITED", "too many uploads in progress on this server; try again shortly")
        self._reading += 1
        try:
            await intake.count_upload(viewer.id)
            part = await _read_file(request, max_file_bytes=self.settings.max_input_bytes)
            row = await intake.take(owner_id=viewer.id, data=bytes(part.data), filename=part.filename)
        except _Refused as refused:
            return _error(refused.status, refused.code, refused.message)
        except InputRejected as rejected:
            return _error(rejected.status, rejected.code, rejected.message)
        finally:
            self._reading -= 1
        return JSONResponse(_describe(row))

    async def original(self, request: Request) -> Response:
        found = await self._readable(request)
        if isinstance(found, Response):
            return found
        state, row = found
        path = state.store.path_for(row.content_hash)
        if not await asyncio.to_thread(path.is_file):
            return _error(404, "NOT_FOUND", "no such input")
        return FileResponse(path, media_type=row.mime, headers={"Cache-Control": _CACHE, "Vary": "Authorization"})

    async def thumbnail(self, request: Request) -> Response:
        found = await self._readable(request)
        if isinstance(found, Response):
            return found
        state, row = found
        path = await state.store.thumbnail(row.content_hash, _THUMB_SIZE)
        if path is None:
            return _error(404, "NOT_FOUND", "no such input")
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": _CACHE, "Vary": "Authorization"})

    async def _readable(self, request: Request) -> tuple[AppState, models.Input] | Response:
        """The input a URL names, when the viewer may read it (its owner, or an admin); else the answer."""
        viewer = await _viewer(request)
        if viewer is None:
            return _error(401, "UNAUTHENTICATED", "authentication required: send a bearer API token")
        try:
            input_id = uuid.UUID(request.path_params["input_id"])
        except ValueError:
            return _error(404, "NOT_FOUND", "no such input")
        state: AppState = request.app.state.safelight
        async with state.sessions() as session:
            row = await input_by_id(session, input_id=input_id, owner_id=None if viewer.is_admin else viewer.id)
        if row is None:
            return _error(404, "NOT_FOUND", "no such input")
        return state, row


def _describe(row: models.Input) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "contentHash": row.content_hash,
        "mime": row.mime,
        "width": row.width,
        "height": row.height,
        "sizeBytes": row.size_bytes,
        "filename": row.filename,
    }


def input_routes(settings: Settings) -> list[BaseRoute]:
    """The routes of inputs, for graph/app.py (`POST /inputs` is exempt from the app-wide body limit)."""
    uploads = _Uploads(settings)
    return [
        Route(UPLOAD_PATH, uploads.upload, methods=["POST"]),
        Route(f"{UPLOAD_PATH}/{{input_id}}", uploads.original, methods=["GET", "HEAD"]),
        Route(f"{UPLOAD_PATH}/{{input_id}}/thumb", uploads.thumbnail, methods=["GET", "HEAD"]),
    ]
