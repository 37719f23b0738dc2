"""The model catalogue of one backend, read from `GET /object_info`.

Choices are read from the inputs of the stock nodes that consume them
(`CheckpointLoaderSimple.ckpt_name`, `LoraLoader.lora_name`,
`KSampler.sampler_name` / `scheduler`). ComfyUI describes a choice input in
two ways and both are accepted: the classic `[["a.safetensors", ...], {...}]`
and the newer `["COMBO", {"options": [...]}]`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Catalog", "CatalogKind", "merge_object_info"]

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
    # The node classes as `/object_info` describes them (what comfy.workflow_check checks against);
    # not compared: two catalogues are equal when they offer the same choices and classes.
    object_info: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_object_info(cls, info: Mapping[str, Any]) -> Catalog:
        values = {kind: _choices(info, node, name) for kind, (node, name) in _SOURCES.items()}
        specs = {str(name): spec for name, spec in info.items() if isinstance(spec, Mapping)}
        return cls(node_classes=frozenset(info), object_info=specs, **values)

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


def merge_object_info(infos: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several backends' node classes as one: a class any backend offers, each choice input offering
    what any backend offers (the first backend's declaration otherwise)."""
    merged: dict[str, Any] = {}
    for info in infos:
        for name, spec in info.items():
            if name not in merged:
                merged[name] = spec
            elif spec is not merged[name]:
                merged[name] = _merge_choices(merged[name], spec)
    return merged


def _merge_choices(first: Mapping[str, Any], other: Mapping[str, Any]) -> Mapping[str, Any]:
    first_inputs, other_inputs = first.get("input"), other.get("input")
    if not isinstance(first_inputs, Mapping) or not isinstance(other_inputs, Mapping):
        return first
    inputs: dict[str, Any] = dict(first_inputs)
    for section, group in first_inputs.items():
        theirs = other_inputs.get(section)
        if not isinstance(group, Mapping) or not isinstance(theirs, Mapping):
            continue
        merged_group: dict[str, Any] = dict(group)
        for name, entry in group.items():
            ours_options, their_options = _combo_options(entry), _combo_options(theirs.get(name))
            if ours_options and their_options and set(their_options) - set(ours_options):
                union = list(dict.fromkeys((*ours_options, *their_options)))
                merged_group[name] = (
                    [union, *entry[1:]]
                    if isinstance(entry[0], list | tuple)
                    else [
                        entry[0],
                        {**entry[1], "options": union},
                        *entry[2:],
                    ]
                )
        inputs[section] = merged_group
    return {**first, "input": inputs}
