"""Content-addressed storage of outputs (images, animations, video, audio, text) and inputs on a local directory.

Files are named by the SHA-256 of their bytes, so storing the same file twice
is a no-op and a job that runs twice cannot create two copies. Lookups accept
only 64 lowercase hex characters: a path is never built from anything else.
Bytes are stored as received: a PNG keeps its tEXt chunks (ComfyUI's `prompt` and
`workflow`), so a downloaded image dropped into ComfyUI opens its workflow.

Content addressing stays internal: image URLs name a generation's image (its id and
index, graph/app.py), so two users who made the same image get different URLs, and
a deleted generation's URLs stop answering even while another generation keeps the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from jobs.media import OutputKind, measure

__all__ = ["ImageStore", "OutputTooLarge", "StoredImage", "StoredOutput", "is_content_hash"]

_HASH = re.compile(r"^[0-9a-f]{64}$")
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
THUMBNAIL_SIZES = (128, 256, 512)


class OutputTooLarge(ValueError):
    """An output larger than the configured limit (SAFELIGHT_MAX_OUTPUT_BYTES): nothing was stored."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"output of {size} bytes is larger than the limit of {limit} bytes")
        self.size = size
        self.limit = limit


def is_content_hash(value: str) -> bool:
    return bool(_HASH.match(value))


@dataclass(frozen=True, slots=True)
class StoredImage:
    content_hash: str
    size_bytes: int
    width: int
    height: int
    mime: str


@dataclass(frozen=True, slots=True)
class StoredOutput:
    """A stored output and its measures (jobs/media.py); None where a measure does not apply."""

    content_hash: str
    size_bytes: int
    mime: str
    kind: OutputKind
    width: int | None
    height: int | None
    frames: int | None
    duration_s: float | None


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, content_hash: str) -> Path:
        if not is_content_hash(content_hash):
            raise ValueError("not a content hash")
        return self.root / content_hash[:2] / content_hash

    async def put(self, data: bytes) -> StoredImage:
        """Store bytes; raise ValueError when they are not an image.

        In a thread, whatever the size: creating a file costs about 1 ms of kernel time on a small VM,
        which the event loop (relaying other jobs' progress) must not wait for (STYLE rule 6).
        """
        return await asyncio.to_thread(self._put, data)

    def _put(self, data: bytes) -> StoredImage:
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                mime = _MIME.get(image.format or "", "application/octet-stream")
        except OSError as exc:
            raise ValueError(f"not an image: {exc}") from exc
        content_hash = hashlib.sha256(data).hexdigest()
        path = self.path_for(content_hash)
        if not os.path.exists(path):
            self._write_new(path, data)
        return StoredImage(content_hash, len(data), width, height, mime)

    async def put_output(self, data: bytes, *, declared_kind: OutputKind, max_bytes: int) -> StoredOutput:
        """Store one output of any kind, unchanged; its mime and measures from its bytes (jobs/media.py).

        `declared_kind` is what ComfyUI's history called it (only TEXT is taken on trust). Raises
        OutputTooLarge past `max_bytes` and ValueError for bytes of an image type that do not open,
        before anything is written.
        """
        if len(data) > max_bytes:
            raise OutputTooLarge(len(data), max_bytes)
        return await asyncio.to_thread(self._put_output, data, declared_kind)

    def _put_output(self, data: bytes, declared_kind: OutputKind) -> StoredOutput:
        media = measure(data, declared_kind=declared_kind)
        content_hash = hashlib.sha256(data).hexdigest()
        path = self.path_for(content_hash)
        if not os.path.exists(path):
            self._write_new(path, data)
        return StoredOutput(
            content_hash=content_hash,
            size_bytes=len(data),
            mime=media.mime,
            kind=media.kind,
            width=media.width,
            height=media.height,
            frames=media.frames,
            duration_s=media.duration_s,
        )

    def read_text(self, content_hash: str, *, max_bytes: int) -> str | None:
        """The first `max_bytes` of a stored text output, decoded (a cut character is replaced); None if absent.

        Blocking: call it in a thread.
        """
        try:
            with open(self.path_for(content_hash), "rb") as file:
                return file.read(max_bytes).decode("utf-8", errors="replace")
        except FileNotFoundError:
            return None

    @staticmethod
    def _write_new(path: Path, data: bytes) -> None:
        """Write to a unique temporary name beside `path`, then rename: `path` is never partial.

        The directory is created only when the open finds it missing (once per prefix), not
        checked on every put.
        """
        tmp = f"{path.parent}/.tmp-{path.name[:16]}-{secrets.token_hex(8)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, flags, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    async def thumbnail(self, content_hash: str, size: int) -> Path | None:
        """A PNG thumbnail no larger than size x size (an animation's first frame), made once and kept;
        None if there is no such file or it is no image."""
        if size not in THUMBNAIL_SIZES:
            raise ValueError(f"thumbnail size must be one of {THUMBNAIL_SIZES}")
        return await asyncio.to_thread(self._thumbnail, content_hash, size)

    def _thumbnail(self, content_hash: str, size: int) -> Path | None:
        source = self.path_for(content_hash)
        if not source.exists():
            return None
        target = self.root / "thumbs" / str(size) / content_hash
        if not target.exists():
            png = io.BytesIO()
            try:
                with Image.open(source) as image:
                    image.thumbnail((size, size))
                    image.save(png, format="PNG")
            except (UnidentifiedImageError, Image.DecompressionBombError):
                return None  # no image (a sound), or one Pillow refuses to decode at all
            self._write_new(target, png.getvalue())
        return target

    async def delete_unreferenced(self, content_hashes: list[str], still_used: set[str]) -> None:
        """Remove files no image row references any more."""

        def _delete() -> None:
            for content_hash in content_hashes:
                if content_hash in still_used:
                    continue
                self.path_for(content_hash).unlink(missing_ok=True)
                for size in THUMBNAIL_SIZES:
                    (self.root / "thumbs" / str(size) / content_hash).unlink(missing_ok=True)

        await asyncio.to_thread(_delete)
