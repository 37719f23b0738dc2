"""Loads the ComfyUI recordings kept in the repository (tests/recordings, see its README).

`upstream/` was recorded from upstream ComfyUI 0.3.64 (with an observer socket beside the submitter),
`packaging/` from the 0.12.1 packaging; the fake's dialects are named after them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from comfy.fake.config import Dialect

RECORDINGS = Path(__file__).resolve().parents[1] / "recordings"
BUILDS: tuple[Dialect, ...] = ("upstream", "packaging")


@dataclass(frozen=True)
class Recording:
    name: str
    entries: list[dict[str, Any]]

    def http(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        return [
            entry["data"]
            for entry in self.entries
            if entry["kind"] == "http"
            and (method is None or entry["data"]["method"] == method)
            and (path is None or entry["data"]["path"] == path)
        ]

    def submissions(self) -> list[dict[str, Any]]:
        return [data["request_json"] for data in self.http("POST", "/prompt") if "request_json" in data]

    def socket_names(self) -> list[str]:
        names: list[str] = []
        for entry in self.entries:
            if entry["kind"] in ("text", "binary") and entry["ws"] not in names:
                names.append(entry["ws"])
        return names

    def frames(self, socket: str) -> list[dict[str, Any]]:
        """Messages of one connection, normalised like `tests.fake.wire.Frame` (see `frame_of`)."""
        result: list[dict[str, Any]] = []
        for entry in self.entries:
            if entry.get("ws") != socket:
                continue
            if entry["kind"] == "text":
                result.append(entry["data"])
            elif entry["kind"] == "binary":
                result.append({"type": f"binary:{entry['data']['event_type']}", "data": entry["data"].get("metadata")})
        return result

    def cached_nodes(self) -> list[list[str]]:
        return [
            entry["data"]["data"]["nodes"]
            for entry in self.entries
            if entry["kind"] == "text" and entry["data"]["type"] == "execution_cached"
        ]


@cache
def load(stem: str, build: str = "packaging") -> Recording:
    """Recording `stem` (a file name prefix such as "09") of `build`: "upstream" or "packaging"."""
    (path,) = (RECORDINGS / build).glob(f"{stem}_*.json")
    return Recording(path.stem, json.loads(path.read_text()))


def shape(value: Any) -> Any:
    """The key structure of a JSON value: dicts by their keys (recursively), lists by their first dict."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        dicts = [item for item in value if isinstance(item, dict)]
        return [shape(dicts[0])] if dicts else []
    return None


def types(frames: list[dict[str, Any]], *, skip: tuple[str, ...] = ()) -> list[str]:
    return [frame["type"] for frame in frames if frame["type"] not in skip]
