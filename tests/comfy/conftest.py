from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

RECORDINGS = Path(__file__).resolve().parents[3] / "shared" / "comfy" / "recordings"


def load_recording(name: str) -> list[dict[str, Any]]:
    matches = sorted(RECORDINGS.glob(f"{name}*.json"))
    assert matches, f"no recording {name} in {RECORDINGS}"
    entries: list[dict[str, Any]] = json.loads(matches[0].read_text())
    return entries


def ws_messages(entries: list[dict[str, Any]], ws: str | None = None) -> list[dict[str, Any]]:
    return [e["data"] for e in entries if e["kind"] == "text" and (ws is None or e.get("ws") == ws)]


def http_answers(entries: list[dict[str, Any]], method: str, path_prefix: str) -> list[dict[str, Any]]:
    return [
        e["data"]
        for e in entries
        if e["kind"] == "http" and e["data"]["method"] == method and e["data"]["path"].startswith(path_prefix)
    ]


@pytest.fixture
def recording() -> Any:
    return load_recording
