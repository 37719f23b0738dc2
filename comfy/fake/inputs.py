"""Files uploaded with `POST /upload/image` and `/upload/mask`: ComfyUI's `input/` folder (and uploads typed
`temp` or `output`), held in memory.

Names are checked the way upstream's `image_upload` checks paths (a virtual folder per type, `commonpath`
against it), so a name that would escape the folder upstream is refused here too. Nothing from a request
reaches the filesystem. The store is bounded: MAX_FILES files and MAX_BYTES bytes in all; the oldest upload
is forgotten beyond either, as a disk that ComfyUI's owner cleans would eventually forget it.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections import OrderedDict
from dataclasses import dataclass

MAX_FILES = 10_000
MAX_BYTES = 512 * 1024 * 1024

UPLOAD_TYPES = ("input", "temp", "output")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif")
"""What upstream's `filter_files_content_types(files, ["image"])` keeps (mimetypes says `image/...`)."""


class PathEscapeError(ValueError):
    """The name resolves outside its type's folder (upstream answers 400)."""


@dataclass(frozen=True)
class StoredInput:
    data: bytes
    digest: str
    """sha256 of `data`, upstream's default `node_helpers.hasher()`."""


def split_annotation(name: str, default_type: str = "input") -> tuple[str, str]:
    """`"x.png [output]"` → `("x.png", "output")`: folder_paths.annotated_filepath's suffixes."""
    for kind in UPLOAD_TYPES:
        suffix = f" [{kind}]"
        if name.endswith(suffix):
            return name[: -len(suffix)], kind
    return name, default_type


def _root(kind: str) -> str:
    """The type's folder, named as in a ComfyUI install: `input/../input/x` stays inside it, as upstream."""
    return f"/comfyui/{kind}"


def upload_path(kind: str, subfolder: str, filename: str) -> str:
    """The path below the type's folder where upstream's `image_upload` writes; raises PathEscapeError."""
    root = _root(kind)
    folder = posixpath.join(root, posixpath.normpath(subfolder)) if subfolder else root
    path = posixpath.normpath(posixpath.join(folder, filename))
    if posixpath.commonpath((root, path)) != root or path == root:
        raise PathEscapeError(filename)
    return posixpath.relpath(path, root)


def view_path(kind: str, subfolder: str | None, filename: str) -> str | None:
    """Where `GET /view` looks (its basename rule and subfolder check); None when upstream refuses (403)."""
    root = _root(kind)
    folder = root
    if subfolder is not None:
        folder = posixpath.normpath(posixpath.join(root, subfolder))
        if posixpath.commonpath((root, folder)) != root:
            return None
    return posixpath.relpath(posixpath.join(folder, posixpath.basename(filename)), root)


class InputStore:
    def __init__(self) -> None:
        self._files: OrderedDict[tuple[str, str], StoredInput] = OrderedDict()
        self._bytes = 0

    def get(self, kind: str, path: str) -> StoredInput | None:
        return self._files.get((kind, path))

    def exists(self, kind: str, path: str) -> bool:
        return (kind, path) in self._files

    def put(self, kind: str, path: str, data: bytes) -> None:
        key = (kind, path)
        old = self._files.pop(key, None)
        if old is not None:
            self._bytes -= len(old.data)
        self._files[key] = StoredInput(data, hashlib.sha256(data).hexdigest())
        self._bytes += len(data)
        while len(self._files) > MAX_FILES or self._bytes > MAX_BYTES:
            _, dropped = self._files.popitem(last=False)
            self._bytes -= len(dropped.data)

    def image_names(self) -> list[str]:
        """LoadImage's choices: the image files directly in `input/`, sorted as upstream sorts them."""
        return sorted(
            path
            for kind, path in self._files
            if kind == "input" and "/" not in path and path.lower().endswith(_IMAGE_SUFFIXES)
        )

    def file_names(self) -> list[str]:
        """LoadImageMask's choices: every file directly in `input/`."""
        return sorted(path for kind, path in self._files if kind == "input" and "/" not in path)

    def resolve(self, name: str) -> StoredInput | None:
        """A loader's `image` value (`folder_paths.get_annotated_filepath`): a path below `input/` or an
        annotated one; None when upstream's `exists_annotated_filepath` is false."""
        path, kind = split_annotation(name)
        try:
            return self.get(kind, upload_path(kind, "", path))
        except PathEscapeError:
            return None

    def clear(self) -> None:
        self._files.clear()
        self._bytes = 0
