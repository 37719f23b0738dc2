"""The outputs of SaveImage and PreviewImage, named like ComfyUI's files in its `output/` and `temp/` folders.

ComfyUI writes one file per image. Creating a file on this machine's ext4 costs 70-500 µs of CPU, and an
append can stall for milliseconds behind the journal, so the fake keeps outputs in memory instead, up to
MEMORY_MAX_BYTES; older ones are appended, in chunks and in a thread, to one pack file in a private
directory and read back from it. Every output stays readable through `/view` until `clear()` or
`remove()` (or until MAX_OUTPUTS newer ones have been saved). The `abs_path` a node reports is where
ComfyUI would have written the file; no file is created there (clients must not use it anyway).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path

logger = logging.getLogger(__name__)

MEMORY_MAX_BYTES = 32 * 1024 * 1024
"""The newest outputs, up to this many bytes in all, are held in memory."""

SPILL_CHUNK_BYTES = 1024 * 1024
"""Outputs pushed out of memory are appended to the pack file once this many bytes have gathered."""

MAX_OUTPUTS = 100_000
"""The newest outputs that stay readable; the oldest is forgotten when one more is saved."""

Key = tuple[str, str, str]
"""(type, subfolder, filename), the `/view` parameters."""


class OutputStore:
    def __init__(self) -> None:
        self._root: Path | None = None
        self._counters: OrderedDict[tuple[str, str, str], int] = OrderedDict()
        self._folders: dict[tuple[str, str], Path] = {}
        """(kind, subfolder) → the checked, resolved folder (each check costs a realpath)."""
        self._known: OrderedDict[Key, None] = OrderedDict()
        """Every readable output, oldest first."""
        self._memory: OrderedDict[Key, bytes] = OrderedDict()
        self._memory_bytes = 0
        self._gathering: dict[Key, bytes] = {}
        """Pushed out of memory, waiting to be appended to the pack."""
        self._gathering_bytes = 0
        self._appending: dict[Key, bytes] = {}
        """Being appended to the pack by `_spill`."""
        self._packed: dict[Key, tuple[int, int]] = {}
        """(offset, length) in the pack file."""
        self._spiller: asyncio.Task[None] | None = None

    @property
    def root(self) -> Path:
        """Created on first use, removed by `remove()` when the server stops."""
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="fake-comfyui-"))
        return self._root

    def reserve(self, kind: str, filename_prefix: str, suffix: str = "_.png") -> tuple[str, str, Path]:
        """(subfolder, filename, path) for the next `{prefix}_{counter:05}{suffix}`, as ComfyUI names them
        (`_.png`, `_.webp`, `_.flac`; a video combine node `.png`); one counter per prefix."""
        normalized = os.path.normpath(filename_prefix)
        subfolder, prefix = os.path.split(normalized)
        folder = self._folder(kind, subfolder)
        key = (kind, subfolder, prefix)
        counter = self._counters.pop(key, 0) + 1
        self._counters[key] = counter
        if len(self._counters) > MAX_OUTPUTS:
            # Unused for MAX_OUTPUTS saves, so none of its files is still readable: restarting at 1 is safe.
            self._counters.popitem(last=False)
        filename = f"{prefix}_{counter:05}{suffix}"
        return subfolder, filename, folder / filename

    def _folder(self, kind: str, subfolder: str) -> Path:
        folder = self._folders.get((kind, subfolder))
        if folder is not None:
            return folder
        base = (self.root / kind).resolve()
        folder = (base / subfolder).resolve()
        if folder != base and base not in folder.parents:
            raise ValueError(
                "**** ERROR: Saving image outside the output folder is not allowed."
                f"\n full_output_folder: {folder}\n         output_dir: {base}"
            )
        self._folders[(kind, subfolder)] = folder
        return folder

    def save(self, kind: str, subfolder: str, filename: str, data: bytes) -> None:
        """Keep `data` as the output `kind/subfolder/filename` (reserved first). Never waits for the disk."""
        key = (kind, subfolder, filename)
        self._forget(key)
        self._known[key] = None
        if len(self._known) > MAX_OUTPUTS:
            oldest, _ = self._known.popitem(last=False)
            self._forget(oldest)
        self._memory[key] = data
        self._memory_bytes += len(data)
        while self._memory_bytes > MEMORY_MAX_BYTES:
            pushed, pushed_data = self._memory.popitem(last=False)
            self._memory_bytes -= len(pushed_data)
            self._gathering[pushed] = pushed_data
            self._gathering_bytes += len(pushed_data)
        if self._gathering_bytes >= SPILL_CHUNK_BYTES and self._spiller is None:
            self._spiller = asyncio.get_running_loop().create_task(self._spill(), name="fake-comfyui-spill")

    async def read(self, kind: str, subfolder: str, filename: str) -> bytes | None:
        """Only outputs this store saved are served: no path from the request reaches the filesystem."""
        key = (kind, subfolder, filename)
        for held in (self._memory, self._gathering, self._appending):
            data = held.get(key)
            if data is not None:
                return data
        where = self._packed.get(key)
        if where is None or self._root is None:
            return None
        return await asyncio.to_thread(_read_at, self._root / "outputs.pack", *where)

    def _forget(self, key: Key) -> None:
        self._known.pop(key, None)
        data = self._memory.pop(key, None)
        if data is not None:
            self._memory_bytes -= len(data)
        data = self._gathering.pop(key, None)
        if data is not None:
            self._gathering_bytes -= len(data)
        self._appending.pop(key, None)
        self._packed.pop(key, None)

    async def _spill(self) -> None:
        try:
            while self._gathering_bytes >= SPILL_CHUNK_BYTES:
                pack = self.root / "outputs.pack"
                self._appending, self._gathering, self._gathering_bytes = self._gathering, {}, 0
                batch = list(self._appending.items())
                try:
                    offset = await asyncio.to_thread(_append, pack, [data for _, data in batch])
                except OSError:
                    logger.exception("fake ComfyUI could not append %d outputs to %s; they are lost", len(batch), pack)
                    self._appending = {}
                    continue
                if self._root is None or pack != self._root / "outputs.pack":
                    return  # cleared meanwhile
                for key, data in batch:
                    if self._appending.pop(key, None) is data:
                        self._packed[key] = (offset, len(data))
                    offset += len(data)
                self._appending = {}
        finally:
            self._spiller = None

    def clear(self) -> None:
        self.remove()
        self._counters.clear()

    def remove(self) -> None:
        """Forget every output and delete the directory (the server stops or is reset)."""
        if self._spiller is not None:
            self._spiller.cancel()
            self._spiller = None
        self._folders.clear()
        self._known.clear()
        self._memory.clear()
        self._memory_bytes = 0
        self._gathering.clear()
        self._gathering_bytes = 0
        self._appending = {}
        self._packed.clear()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None


def _append(pack: Path, chunks: list[bytes]) -> int:
    """Append `chunks` to the pack file; the offset of the first."""
    with open(pack, "ab") as file:
        offset = file.tell()
        file.write(b"".join(chunks))
    return offset


def _read_at(pack: Path, offset: int, length: int) -> bytes | None:
    try:
        with open(pack, "rb") as file:
            file.seek(offset)
            return file.read(length)
    except FileNotFoundError:
        return None
