"""The output store: outputs read back byte for byte from memory or the pack file, within its bounds."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from comfy.fake import storage
from comfy.fake.storage import OutputStore


@pytest.fixture
def store() -> Iterator[OutputStore]:
    outputs = OutputStore()
    yield outputs
    outputs.remove()


def _save(store: OutputStore, prefix: str, data: bytes) -> tuple[str, str, str]:
    subfolder, filename, _ = store.reserve("output", prefix)
    store.save("output", subfolder, filename, data)
    return "output", subfolder, filename


async def _spilled(store: OutputStore) -> None:
    """Wait for the append to the pack file that `save` started, if any."""
    spiller = store._spiller
    if spiller is not None:
        await spiller


async def test_outputs_read_back_and_nothing_else(store: OutputStore) -> None:
    first = _save(store, "a/b", b"one")
    second = _save(store, "a/b", b"two")
    assert [first[2], second[2]] == ["b_00001_.png", "b_00002_.png"]
    assert await store.read(*first) == b"one"
    assert await store.read(*second) == b"two"
    assert await store.read("output", "a", "b_00003_.png") is None
    assert await store.read("temp", "a", "b_00001_.png") is None
    with pytest.raises(ValueError, match="outside the output folder"):
        store.reserve("output", "../x")


async def test_memory_is_bounded_and_older_outputs_come_back_from_the_pack(
    store: OutputStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage, "MEMORY_MAX_BYTES", 10_000)
    monkeypatch.setattr(storage, "SPILL_CHUNK_BYTES", 3_000)
    saved = {_save(store, f"p{index}", os.urandom(1_000 + index)): index for index in range(40)}
    datas = {key: await store.read(*key) for key in saved}
    assert store._memory_bytes <= 10_000
    await _spilled(store)
    assert store._packed, "nothing reached the pack file"
    assert store._memory_bytes + store._gathering_bytes < 10_000 + 3_000
    for key in saved:
        assert await store.read(*key) == datas[key]
    assert [len(data or b"") for data in datas.values()] == [1_000 + index for index in range(40)]


async def test_at_most_max_outputs_stay_readable(store: OutputStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "MAX_OUTPUTS", 5)
    keys = [_save(store, f"only{index}", b"x%d" % index) for index in range(8)]
    assert [await store.read(*key) for key in keys] == [None, None, None, b"x3", b"x4", b"x5", b"x6", b"x7"]
    assert len(store._counters) <= 5
    assert len(store._known) == 5


async def test_clear_forgets_outputs_and_counters(store: OutputStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "MEMORY_MAX_BYTES", 100)
    monkeypatch.setattr(storage, "SPILL_CHUNK_BYTES", 100)
    keys = [_save(store, "c", os.urandom(80)) for _ in range(4)]
    await _spilled(store)
    root = store.root
    assert (root / "outputs.pack").exists()
    store.clear()
    assert not root.exists()
    assert [await store.read(*key) for key in keys] == [None] * 4
    assert _save(store, "c", b"again")[2] == "c_00001_.png"
