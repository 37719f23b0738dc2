"""The model catalogue of one backend, read from `GET /object_info`.

Choices are read from the inputs of the stock nodes that consume them
(`CheckpointLoaderSimple.ckpt_name`, `LoraLoader.lora_name`,
`KSampler.sampler_name` / `scheduler`). ComfyUI describes a choice input in
two ways and both are accepted: the classic `[["a.safetensors", ...], {...}]`
and the newer `["COMBO", {"options": [...]}]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Catalog", "CatalogKind"]

CatalogKind = Literal["checkpoints", "loras", "samplers", "schedulers"]

_SOURCES: dict[str, tuple[str, str]] = {
    "checkpoints": ("CheckpointLoaderSimple", "ckpt_name"),
    "loras": ("LoraLoader", "lora_name"),
    "samplers": ("KSampler", "sampler_name"),
    "schedulers": ("KSampler", "scheduler"),
}


@dataclass(frozen=True, slots=True)
class Catalog:
    checkpoints: tuple[str, ...] = ()
    loras: tuple[str, ...] = ()
    samplers: tuple[str, ...] = ()
    schedulers: tuple[str, ...] = ()
    node_classes: frozenset[str] = frozenset()

    @classmethod
    def from_object_info(cls, info: Mapping[str, Any]) -> Catalog:
        values = {kind: _choices(info, node, name) for kind, (node, name) in _SOURCES.items()}
        return cls(node_classes=frozenset(info), **values)

    def choices(self, kind: str) -> tuple[str, ...]:
        """The choices of one kind ("checkpoints", "loras", "samplers", "schedulers")."""
        if kind not in _SOURCES:
            raise KeyError(f"unknown catalogue kind {kind!r}")
        result: tuple[str, ...] = getattr(self, kind)
        return result


def _choices(info: Mapping[str, Any], node: str, name: str) -> tuple[str, ...]:
    spec = info.get(node)
    if not isinstance(spec, Mapping):
        return ()
    inputs = spec.get("input")
    if not isinstance(inputs, Mapping):
        return ()
    for section in ("required", "optional"):
        group = inputs.get(section)
        if isinstance(group, Mapping) and name in group:
            return _combo_options(group[name])
    return ()


def _combo_options(entry: Any) -> tuple[str, ...]:
    if not isinstance(entry, list | tuple) or not entry:
        return ()
    head = entry[0]
    if isinstance(head, list | tuple):
        return tuple(str(v) for v in head)
    if head == "COMBO" and len(entry) > 1 and isinstance(entry[1], Mapping):
        options = entry[1].get("options")
        if isinstance(options, list | tuple):
            return tuple(str(v) for v in options)
    return ()
