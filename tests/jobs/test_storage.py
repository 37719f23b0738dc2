"""ImageStore: content addressing, atomic writes, and which puts leave the event loop."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

import pytest
from PIL import Image

from jobs import storage
from jobs.storage import ImageStore


def _png(size: int = 8, color: tuple[int, int, int] = (200, 10, 10), *, noise: bool = False) -> bytes:
    if noise:  # random pixels do not compress: the PNG is about 3 * size * size bytes
        image = Image.frombytes("RGB", (size, size), os.urandom(size * size * 3))
    else:
        image = Image.new("RGB", (size, size), color)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


async def test_put_stores_by_hash_and_creates_the_directory(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    data = _png()
    stored = await store.put(data)
    assert stored.content_hash == hashlib.sha256(data).hexdigest()
    assert (stored.size_bytes, stored.width, stored.height, stored.mime) == (len(data), 8, 8, "image/png")
    path = store.path_for(stored.content_hash)
    assert path.read_bytes() == data
    assert path.stat().st_mode & 0o777 == 0o600  # as tempfile.mkstemp made them
    assert _leftovers(tmp_path) == []


async def test_same_bytes_twice_keep_the_first_file(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    data = _png()
    first = await store.put(data)
    before = os.stat(store.path_for(first.content_hash))
    second = await store.put(data)
    after = os.stat(store.path_for(second.content_hash))
    assert second == first
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


async def test_second_image_under_an_existing_prefix_directory(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    first = await store.put(_png(color=(1, 2, 3)))
    prefix = first.content_hash[:2]
    # Another file in the same prefix directory: the directory exists, the open succeeds at once.
    other = prefix + "f" * 62
    store.path_for(other).write_bytes(b"x")
    second = await store.put(_png(color=(4, 5, 6)))
    assert store.path_for(second.content_hash).exists()


async def test_failed_write_leaves_nothing_under_the_final_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ImageStore(tmp_path)
    data = _png()

    def failing_write(fd: int, chunk: bytes | memoryview) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, "write", failing_write)
    with pytest.raises(OSError, match="No space left"):
        await store.put(data)
    monkeypatch.undo()
    assert not store.path_for(hashlib.sha256(data).hexdigest()).exists()
    assert _leftovers(tmp_path) == []
    stored = await store.put(data)  # and a retry stores it
    assert store.path_for(stored.content_hash).read_bytes() == data


async def test_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an image"):
        await ImageStore(tmp_path).put(b"hello")
    assert os.listdir(tmp_path) == []


async def test_images_are_stored_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ImageStore(tmp_path)
    threads: list[int] = []
    real_put = store._put

    def recording_put(data: bytes) -> storage.StoredImage:
        threads.append(threading.get_ident())
        return real_put(data)

    monkeypatch.setattr(store, "_put", recording_put)
    small, large = _png(), _png(400, noise=True)
    await store.put(small)
    await store.put(large)
    assert len(threads) == 2 and threading.get_ident() not in threads
    assert store.path_for(hashlib.sha256(large).hexdigest()).read_bytes() == large


async def test_thumbnail_of_a_stored_image(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    stored = await store.put(_png(300))
    thumb = await store.thumbnail(stored.content_hash, 128)
    assert thumb is not None
    with Image.open(thumb) as image:
        assert image.size == (128, 128)
    assert await store.thumbnail("0" * 64, 128) is None
