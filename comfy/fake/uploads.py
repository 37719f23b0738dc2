"""`POST /upload/image` and `POST /upload/mask`, answering as upstream ComfyUI 0.3.64's `image_upload`.

Multipart fields: `image` (the file; its filename names it), `overwrite` ("true"/"1" replaces a file of that
name), `type` (input, the default; temp; output), `subfolder`. Without overwrite, an existing file of the
same name and content is a duplicate (nothing written, same name answered); a different one makes the upload
`name (1).ext`, `name (2).ext`... 400 for no file, an empty file name or a path that leaves the folder.
Answer: `{"name", "subfolder", "type"}`.

`/upload/mask` also takes `original_ref` (JSON `{"filename", "subfolder"?, "type"?}`, type defaulting to
output): the original image with its alpha channel replaced by the mask's, saved as PNG under the mask's
name, the original's PNG text chunks kept. As upstream, a refused or missing original writes nothing and
the answer is still 200.
"""

from __future__ import annotations

import asyncio
import io
import json
import posixpath
from typing import Any

from PIL import Image, PngImagePlugin, UnidentifiedImageError
from python_multipart.exceptions import MultipartParseError
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from comfy.fake.inputs import UPLOAD_TYPES, PathEscapeError, split_annotation, upload_path, view_path
from comfy.fake.routes import json_response, server_error
from comfy.fake.state import FakeComfy
from comfy.fake.stats import Instant

MAX_FORM_PARTS = 64
MASK_MAX_PIXELS = 8192 * 8192
"""Compositing a mask decodes two images; larger ones are refused (500, as a failed decode upstream)."""


def _fake(request: Request) -> FakeComfy:
    fake: FakeComfy = request.app.state.fake
    return fake


async def _form(request: Request, limit: int) -> FormData | Response:
    declared = request.headers.get("content-length", "")
    size = int(declared) if declared.isdigit() else len(await request.body())
    if size > limit:
        # aiohttp's HTTPRequestEntityTooLarge, raised by `request.post()` past `client_max_size`.
        return PlainTextResponse(
            f"Maximum request body size {limit} exceeded, actual body size {size}", status_code=413
        )
    try:
        return await request.form(max_files=MAX_FORM_PARTS, max_fields=MAX_FORM_PARTS)
    except (MultiPartException, MultipartParseError, ValueError):
        return Response(status_code=400)


def _field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


async def _upload(request: Request, *, mask: bool) -> Response:
    arrived = Instant.now()
    fake = _fake(request)
    form = await _form(request, fake.config.max_upload_bytes)
    if isinstance(form, Response):
        return form
    try:
        image = form.get("image")
        if image is None or image == "":
            return Response(status_code=400)
        if not isinstance(image, UploadFile):
            return server_error()  # upstream reads `.file` of a plain field: AttributeError
        data = await image.read()
        filename = image.filename or ""
        fake.stats.uploads[filename] += 1
        answer = await _store(fake, form, filename, data, mask=mask)
        fake.stats.record("upload", arrived, filename=filename, status=answer.status_code, mask=mask)
        return answer
    finally:
        await form.close()


async def _store(fake: FakeComfy, form: FormData, filename: str, data: bytes, *, mask: bool) -> Response:
    kind = _field(form, "type") or "input"
    if kind not in UPLOAD_TYPES:
        return server_error()  # upstream's get_dir_by_type leaves the folder unbound
    if not filename:
        return Response(status_code=400)
    subfolder = _field(form, "subfolder") or ""
    try:
        path = upload_path(kind, subfolder, filename)
    except PathEscapeError:
        return Response(status_code=400)
    folder = posixpath.dirname(path)
    stem, ext = posixpath.splitext(posixpath.basename(path))
    duplicate = False
    if _field(form, "overwrite") not in ("true", "1"):
        index = 1
        while (existing := fake.inputs.get(kind, path)) is not None:
            if existing.data == data:
                duplicate = True
                break
            filename = f"{stem} ({index}){ext}"
            path = posixpath.join(folder, filename)
            index += 1
    if not duplicate:
        if mask:
            composited = await _composite(fake, form, data, path)
            if isinstance(composited, Response):
                return composited
            if composited is not None:
                fake.inputs.put(kind, path, composited)
                fake.stats.upload_writes[path] += 1
        else:
            fake.inputs.put(kind, path, data)
            fake.stats.upload_writes[path] += 1
    return json_response({"name": filename, "subfolder": subfolder, "type": kind})


async def _composite(fake: FakeComfy, form: FormData, mask: bytes, path: str) -> bytes | Response | None:
    """The bytes upstream's mask upload writes, None when it writes nothing."""
    try:
        ref: Any = json.loads(_field(form, "original_ref") or "")
        original_name, kind = split_annotation(str(ref["filename"]), str(ref.get("type", "output")))
        ref_subfolder = str(ref.get("subfolder", ""))
    except (ValueError, TypeError, KeyError, AttributeError):
        return server_error()
    if not original_name or original_name[0] == "/" or ".." in original_name or kind not in UPLOAD_TYPES:
        return None
    original_path = view_path(kind, ref_subfolder or None, original_name)
    if original_path is None or posixpath.basename(original_path) != posixpath.basename(original_name):
        return None
    original = fake.inputs.get(kind, original_path)
    if original is not None:
        original_data = original.data
    else:
        subfolder, name = posixpath.split(original_path)
        read = await fake.store.read(kind, subfolder, name)
        if read is None:
            return None
        original_data = read
    try:
        return await asyncio.to_thread(_put_alpha, original_data, mask, posixpath.splitext(path)[1])
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
        return server_error()


def _put_alpha(original_data: bytes, mask_data: bytes, ext: str) -> bytes:
    with Image.open(io.BytesIO(original_data)) as original, Image.open(io.BytesIO(mask_data)) as mask:
        for image in (original, mask):
            if image.width * image.height > MASK_MAX_PIXELS:
                raise ValueError("image too large")
        metadata = PngImagePlugin.PngInfo()
        for key, value in getattr(original, "text", {}).items():
            metadata.add_text(key, value)
        rgba = original.convert("RGBA")
        rgba.putalpha(mask.convert("RGBA").getchannel("A"))
        out = io.BytesIO()
        image_format = Image.registered_extensions().get(ext.lower(), "PNG")
        rgba.save(out, format=image_format, compress_level=4, pnginfo=metadata)
        return out.getvalue()


async def upload_image(request: Request) -> Response:
    return await _upload(request, mask=False)


async def upload_mask(request: Request) -> Response:
    return await _upload(request, mask=True)


UPLOAD_ROUTES = [
    Route("/upload/image", upload_image, methods=["POST"]),
    Route("/upload/mask", upload_mask, methods=["POST"]),
]
