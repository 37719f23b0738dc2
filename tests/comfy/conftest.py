from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

RECORDINGS_ROOT = Path(__file__).resolve().parents[1] / "recordings"
"""tests/recordings: traffic recorded from real ComfyUI servers (see its README)."""
RECORDINGS = RECORDINGS_ROOT / "packaging"
"""The 0.12.1 packaging's recordings."""
UPSTREAM_RECORDINGS = RECORDINGS_ROOT / "upstream"
"""Upstream ComfyUI 0.3.64's recordings (with observer sockets, and scenarios 13-19)."""


def load_recording(name: str, *, upstream: bool = False) -> list[dict[str, Any]]:
    """The entries of recording `name` (a file name prefix such as "09_"), of the packaging or of upstream."""
    folder = UPSTREAM_RECORDINGS if upstream else RECORDINGS
    matches = sorted(folder.glob(f"{name}*.json"))
    assert matches, f"no recording {name} in {folder}"
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
