"""Knobs of one fake ComfyUI instance: the dialect it speaks, timing, previews, and failure injection."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

Dialect = Literal["upstream", "packaging"]
DIALECTS: tuple[Dialect, ...] = ("upstream", "packaging")
"""Which ComfyUI build the fake behaves as, named after tests/recordings/upstream and tests/recordings/packaging."""


@dataclass
class FakeConfig:
    dialect: Dialect = "upstream"
    """"upstream": ComfyUI 0.3.64 as recorded in tests/recordings/upstream (execution messages, `progress`
    and previews only to the submitter's socket; type-1 previews after `progress` for clients without
    feature flags; `/queue` arrays; history `[event, data]` messages; `invalid_prompt` 400 bodies).
    "packaging": the 0.12.1 packaging of tests/recordings/packaging (`progress` to every socket, no
    previews without feature flags, `abs_path` in outputs, `/queue` objects, `create_time` in extra_data)."""
    step_time: float = 0.05
    """Seconds per sampler step (KSampler reports one progress message per step)."""
    preview: bool = True
    """Send binary preview frames while a sampler (or SlowProgress with preview=true) runs."""
    stamp_messages: bool = False
    """Add "safelight_ts": time.time() to every `progress` message (benchmarks only)."""
    execution_error_node_class: str | None = None
    """Raise `execution_error` when a node of this class executes."""
    submit_http_500: int = 0
    """The next N `POST /prompt` answer HTTP 500."""
    drop_ws_mid_run: int = 0
    """The next N runs close every websocket right after their first `progress` message."""
    accept_delay_s: float = 0.0
    """`POST /prompt` waits this long before validating and answering."""
    queue_array_form: bool = False
    """`GET /queue` answers upstream's arrays in the packaging dialect too (upstream always does)."""
    max_upload_bytes: int = 50 * 1024 * 1024
    """Largest request body `POST /upload/image` and `/upload/mask` accept (413 beyond, as aiohttp's
    `client_max_size`); the fake holds uploads in memory, so it takes less than upstream's 100 MiB."""
    upscale_models: tuple[str, ...] = ()
    """What `UpscaleModelLoader` offers (upstream lists `models/upscale_models/`): none by default, so
    templates fall back to model-free scaling."""

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def patch(self, changes: dict[str, Any]) -> None:
        """Apply `changes` in place after checking every name and type; raises ValueError."""
        checked = {name: _checked(name, value) for name, value in changes.items()}
        for name, value in checked.items():
            setattr(self, name, value)

    def replace_with(self, other: FakeConfig) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(other, f.name))


_FLOATS = {"step_time", "accept_delay_s"}
_BOOLS = {"preview", "stamp_messages", "queue_array_form"}
_INTS = {"submit_http_500", "drop_ws_mid_run", "max_upload_bytes"}


def _checked(name: str, value: Any) -> Any:
    if name in _FLOATS and isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if name in _BOOLS and isinstance(value, bool):
        return value
    if name in _INTS and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if name == "execution_error_node_class" and (value is None or isinstance(value, str)):
        return value
    if name == "dialect" and value in DIALECTS:
        return value
    if name == "upscale_models" and isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"bad value for {name!r}: {value!r}")
