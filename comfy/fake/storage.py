"""Output files, written under a private directory like ComfyUI's `output/` and `temp/` folders."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path


class OutputStore:
    def __init__(self) -> None:
        self._root: Path | None = None
        self._counters: dict[tuple[str, str, str], int] = {}
        self._files: dict[tuple[str, str, str], Path] = {}

    @property
    def root(self) -> Path:
        """Created on first use, removed by `remove()` when the server stops."""
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="fake-comfyui-"))
        return self._root

    def reserve(self, kind: str, filename_prefix: str) -> tuple[str, str, Path]:
        """(subfolder, filename, path) for the next `{prefix}_{counter:05}_.png`, as ComfyUI names them."""
        normalized = os.path.normpath(filename_prefix)
        subfolder, prefix = os.path.split(normalized)
        base = (self.root / kind).resolve()
        folder = (base / subfolder).resolve()
        if folder != base and base not in folder.parents:
            raise ValueError(
                "**** ERROR: Saving image outside the output folder is not allowed."
                f"\n full_output_folder: {folder}\n         output_dir: {base}"
            )
        key = (kind, subfolder, prefix)
        counter = self._counters.get(key, 0) + 1
        self._counters[key] = counter
        filename = f"{prefix}_{counter:05}_.png"
        path = folder / filename
        self._files[(kind, subfolder, filename)] = path
        return subfolder, filename, path

    async def write(self, path: Path, data: bytes) -> None:
        await asyncio.to_thread(_write, path, data)

    async def read(self, kind: str, subfolder: str, filename: str) -> bytes | None:
        """Only files this store wrote are served: no path from the request reaches the filesystem."""
        path = self._files.get((kind, subfolder, filename))
        if path is None:
            return None
        return await asyncio.to_thread(_read, path)

    def clear(self) -> None:
        self.remove()
        self._counters.clear()
        self._files.clear()

    def remove(self) -> None:
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
