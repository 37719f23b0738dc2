"""Parameters proposed for an uploaded workflow, by recognising the nodes most workflows share.

`propose_params(workflow, object_info)` reads an API-format workflow and returns parameter
declarations in `*.params.json` form (see comfy.templates), which an admin accepts or edits:

- text encoders (CLIPTextEncode) as `prompt` / `negative_prompt`, by the sampler or guider input
  (`positive` / `negative`; BasicGuider's `conditioning` is positive) they feed, followed back
  through conditioning nodes (a ControlNet apply node's `positive` output from its `positive`
  input); one that none reaches is a prompt unless its title says negative;
- samplers (KSampler, KSamplerAdvanced, and the custom-sampling parts: SamplerCustom, RandomNoise,
  BasicScheduler, KSamplerSelect, CFGGuider, FluxGuidance): `seed` (`noise_seed`), `steps`, `cfg`,
  `sampler`, `scheduler`, `guidance`, and `denoise` when it is not 1 or the latent is an encoded image;
- latent size (EmptyLatentImage, EmptySD3LatentImage): `width`, `height` (multiples of 8), `batch_size`;
- loaders: `checkpoint`, `lora` + `lora_strength`, `upscale_model`; `image` (LoadImage) and
  `mask` (LoadImageMask);
- scale factors (ImageScaleBy, LatentUpscaleBy): `scale_by`.

Defaults are the workflow's current values (a choice only when the backend offers it); ranges
come from `/object_info`. A kind seen again gets a numbered name (`prompt_2`). A value set by a
Primitive node (PrimitiveString, PrimitiveInt...) is targeted there. Nothing else is proposed: a
template needs no particular parameter.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["propose_params"]

MAX_SEED: Final = 2**53 - 1  # comfy.templates' bound: the largest integer JavaScript holds exactly
MAX_PROMPT: Final = 4000  # comfy.templates.Limits' default prompt length
DEFAULT_LIMITS: Final = {"steps": 150, "batch_size": 8}  # what comfy.templates.Limits allows by default
_SAMPLING: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    # class -> (input, parameter) pairs, in the order a form shows them
    "KSampler": (
        ("seed", "seed"),
        ("steps", "steps"),
        ("cfg", "cfg"),
        ("sampler_name", "sampler"),
        ("scheduler", "scheduler"),
        ("denoise", "denoise"),
    ),
    "KSamplerAdvanced": (
        ("noise_seed", "seed"),
        ("steps", "steps"),
        ("cfg", "cfg"),
        ("sampler_name", "sampler"),
        ("scheduler", "scheduler"),
    ),
    # the custom-sampling family (SamplerCustomAdvanced's parts), as Flux and SD3 workflows use them
    "SamplerCustom": (("noise_seed", "seed"), ("cfg", "cfg")),
    "RandomNoise": (("noise_seed", "seed"),),
    "BasicScheduler": (("steps", "steps"), ("scheduler", "scheduler"), ("denoise", "denoise")),
    "KSamplerSelect": (("sampler_name", "sampler"),),
    "CFGGuider": (("cfg", "cfg"),),
    "FluxGuidance": (("guidance", "guidance"),),
}
_CONDITIONED: Final = {  # class -> its (positive, negative) conditioning inputs
    "KSampler": ("positive", "negative"),
    "KSamplerAdvanced": ("positive", "negative"),
    "SamplerCustom": ("positive", "negative"),
    "CFGGuider": ("positive", "negative"),
    "BasicGuider": ("conditioning", None),
}
_DESCRIPTIONS: Final = {
    "seed": "Random seed; a random one is chosen (and reported) when absent.",
    "steps": "Sampling steps.",
    "cfg": "Classifier-free guidance scale: how strictly to follow the prompt.",
    "sampler": "The sampling algorithm.",
    "scheduler": "The noise schedule.",
    "denoise": "How much of the input to change: 0 none, 1 all.",
    "guidance": "Guidance the model was distilled with (Flux): how strictly to follow the prompt.",
}
_LATENTS: Final = frozenset({"EmptyLatentImage", "EmptySD3LatentImage"})
_ENCODED: Final = frozenset({"VAEEncode", "VAEEncodeForInpaint", "SetLatentNoiseMask", "InpaintModelConditioning"})
_PRIMITIVES: Final = frozenset(
    {"PrimitiveString", "PrimitiveStringMultiline", "PrimitiveInt", "PrimitiveFloat", "PrimitiveBoolean"}
)
_MAX_WALK: Final = 1000  # node outputs visited tracing one sampler input back
_MAX_NODE_INPUTS: Final = 256
_MAX_WORK: Final = 50_000  # inputs looked at for all of them (~0.2 s): past it, fewer prompts are recognised


@dataclass
class _Proposer:
    workflow: Mapping[str, Any]
    object_info: Mapping[str, Any]
    params: list[dict[str, Any]] = field(default_factory=list)
    used: set[tuple[str, str]] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)
    work: int = 0  # inputs looked at tracing conditioning back, over all samplers (_MAX_WORK)

    # -- reading the workflow --------------------------------------------------------------------

    def inputs(self, node_id: str) -> Mapping[str, Any]:
        node = self.workflow.get(node_id)
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        return inputs if isinstance(inputs, Mapping) else {}

    def class_of(self, node_id: str) -> str | None:
        node = self.workflow.get(node_id)
        kind = node.get("class_type") if isinstance(node, Mapping) else None
        return kind if isinstance(kind, str) else None

    def spec(self, node_id: str, input_name: str) -> tuple[Any, Mapping[str, Any]]:
        """The input's `/object_info` declaration: (type or list of choices, options)."""
        info = self.object_info.get(self.class_of(node_id) or "")
        declared = info.get("input") if isinstance(info, Mapping) else None
        if isinstance(declared, Mapping):
            for section in ("required", "optional"):
                group = declared.get(section)
                entry = group.get(input_name) if isinstance(group, Mapping) else None
                if isinstance(entry, list | tuple) and entry:
                    options = entry[1] if len(entry) > 1 and isinstance(entry[1], Mapping) else {}
                    return entry[0], options
        return None, {}

    def choices(self, node_id: str, input_name: str) -> list[str] | None:
        head, options = self.spec(node_id, input_name)
        if isinstance(head, list | tuple):
            return [str(c) for c in head]
        if head == "COMBO" and isinstance(options.get("options"), list | tuple):
            return [str(c) for c in options["options"]]
        return None

    def target(self, node_id: str, input_name: str) -> tuple[tuple[str, str], Any] | None:
        """Where a value for this input is written, and its current value: the input itself when it
        holds a value, a Primitive node's `value` when it is linked to one; None otherwise."""
        value = self.inputs(node_id).get(input_name, _ABSENT)
        if value is _ABSENT:
            return None
        link = _link(value)
        if link is None:
            return (node_id, input_name), value
        origin = link[0]
        if self.class_of(origin) in _PRIMITIVES:
            inner = self.inputs(origin).get("value", _ABSENT)
            if inner is not _ABSENT and _link(inner) is None:
                return (origin, "value"), inner
        return None

    def output_name(self, node_id: str, slot: int) -> str | None:
        info = self.object_info.get(self.class_of(node_id) or "")
        names = info.get("output_name") if isinstance(info, Mapping) else None
        if isinstance(names, list) and 0 <= slot < len(names):
            return str(names[slot])
        return None

    def output_type(self, node_id: str, slot: int) -> str | None:
        info = self.object_info.get(self.class_of(node_id) or "")
        types = info.get("output") if isinstance(info, Mapping) else None
        if isinstance(types, list) and 0 <= slot < len(types):
            return str(types[slot])
        return None

    def encoders(self, node_id: str, input_name: str) -> list[str]:
        """The text encoders whose conditioning reaches this input, nearest first."""
        found: list[str] = []
        start = _link(self.inputs(node_id).get(input_name))
        queued: set[tuple[str, int]] = set() if start is None else {start}
        queue = deque(queued)
        while queue and self.work < _MAX_WORK:
            origin, slot = queue.popleft()
            if origin not in self.workflow:
                continue
            if self.class_of(origin) == "CLIPTextEncode":
                found.append(origin)
                continue
            inputs = self.inputs(origin)
            self.work += 1 + len(inputs)
            if len(inputs) > _MAX_NODE_INPUTS:
                continue  # no conditioning node has so many: not worth tracing through
            same_name = self.output_name(origin, slot)
            links = [(name, _link(value)) for name, value in inputs.items()]
            conditioning = [
                (name, link)
                for name, link in links
                if link is not None and self.output_type(link[0], link[1]) in ("CONDITIONING", None)
            ]
            if same_name is not None and any(name == same_name for name, _ in conditioning):
                conditioning = [(name, link) for name, link in conditioning if name == same_name]
            for _, link in conditioning:
                if link not in queued and len(queued) < _MAX_WALK:
                    queued.add(link)
                    queue.append(link)
        return found

    # -- writing proposals -----------------------------------------------------------------------

    def name(self, base: str) -> str:
        count = self.counts.get(base, 0) + 1
        self.counts[base] = count
        return base if count == 1 else f"{base}_{count}"

    def add(self, base: str, param: dict[str, Any], targets: list[tuple[str, str]]) -> None:
        fresh = [t for t in targets if t not in self.used]
        if not fresh:
            return
        self.used.update(fresh)
        self.params.append({"name": self.name(base), **param, "targets": [list(t) for t in fresh]})

    def number(self, base: str, node_id: str, input_name: str, kind: str, description: str, **extra: Any) -> None:
        found = self.target(node_id, input_name)
        if found is None:
            return
        target, value = found
        if not _is_number(value) or (kind in ("int", "seed") and not _is_int(value)):
            return
        if kind == "int":
            value = int(value)
        _, options = self.spec(node_id, input_name)
        param: dict[str, Any] = {"type": kind, "description": description}
        low: Any = options.get("min")
        high: Any = options.get("max")
        if base in DEFAULT_LIMITS:
            high = DEFAULT_LIMITS[base] if not _is_number(high) else min(high, DEFAULT_LIMITS[base])
        if _is_number(low):
            param["min"] = int(low) if kind == "int" else low
        if _is_number(high):
            param["max"] = int(high) if kind == "int" else high
        param.update(extra)
        if kind == "seed":
            param["min"] = max(int(param.get("min") or 0), 0)
            param["max"] = min(int(param.get("max") or MAX_SEED), MAX_SEED)
        else:
            default = _clamp(value, param.get("min"), param.get("max"), param.get("multiple_of"))
            param["default"] = float(default) if kind == "float" else default
        self.add(base, param, [target])

    def choice(self, base: str, node_id: str, input_name: str, description: str, *, catalog: str | None = None) -> None:
        found = self.target(node_id, input_name)
        if found is None or not isinstance(found[1], str):
            return
        target, value = found
        offered = self.choices(node_id, input_name)
        param: dict[str, Any] = {"type": "enum", "description": description}
        if catalog is not None:
            param["catalog"] = catalog
            if offered is None or value in offered:
                param["default"] = value
        else:
            if not offered:
                return  # nothing to choose from: the backend offers no such file
            param["choices"] = offered
            param["default"] = value if value in offered else offered[0]
        self.add(base, param, [target])

    def prompt(self, base: str, node_id: str, description: str) -> None:
        found = self.target(node_id, "text")
        if found is None or not isinstance(found[1], str):
            return
        target, text = found
        param: dict[str, Any] = {"type": "string", "multiline": True, "max_length": MAX_PROMPT}
        if base == "prompt" and not text.strip():
            param["required"] = True  # an empty prompt in the workflow is one to fill in, not to keep
        else:
            param["default"] = text[:MAX_PROMPT]
        self.add(base, {**param, "description": description}, [target])

    # -- recognising nodes -----------------------------------------------------------------------

    def propose(self) -> list[dict[str, Any]]:
        order = sorted(self.workflow, key=_node_order)
        by_class: dict[str, list[str]] = {}
        for node_id in order:
            by_class.setdefault(self.class_of(node_id) or "", []).append(node_id)

        for node_id in by_class.get("CheckpointLoaderSimple", ()):
            self.choice("checkpoint", node_id, "ckpt_name", "The model checkpoint.", catalog="checkpoints")
        for node_id in (*by_class.get("LoraLoader", ()), *by_class.get("LoraLoaderModelOnly", ())):
            self.lora(node_id)
        for node_id in by_class.get("LoadImage", ()):
            self.media("image", node_id, "The input image.")
        for node_id in by_class.get("LoadImageMask", ()):
            self.media("mask", node_id, "The mask: where the image may change.")

        positive: list[str] = []
        negative: list[str] = []
        for node_id in order:
            sides = _CONDITIONED.get(self.class_of(node_id) or "")
            if sides is None:
                continue
            positive.extend(e for e in self.encoders(node_id, sides[0]) if e not in positive + negative)
            if sides[1] is not None:
                negative.extend(e for e in self.encoders(node_id, sides[1]) if e not in positive + negative)
        for node_id in by_class.get("CLIPTextEncode", ()):
            if node_id not in positive and node_id not in negative:
                meta = self.workflow[node_id].get("_meta")
                title = str(meta.get("title") or "").lower() if isinstance(meta, Mapping) else ""
                (negative if "negative" in title else positive).append(node_id)
        for node_id in positive:
            self.prompt("prompt", node_id, "What the image should show.")
        for node_id in negative:
            self.prompt("negative_prompt", node_id, "What the image should avoid.")

        for kind in sorted(_LATENTS):
            for node_id in by_class.get(kind, ()):
                self.number("width", node_id, "width", "int", "Image width in pixels, a multiple of 8.", multiple_of=8)
                self.number(
                    "height", node_id, "height", "int", "Image height in pixels, a multiple of 8.", multiple_of=8
                )
                self.number("batch_size", node_id, "batch_size", "int", "How many images to generate at once.")
        for node_id in order:
            if self.class_of(node_id) in _SAMPLING:
                self.sampler(node_id)
        for kind in ("ImageScaleBy", "LatentUpscaleBy"):
            for node_id in by_class.get(kind, ()):
                self.number("scale_by", node_id, "scale_by", "float", "The scale factor.")
        for node_id in by_class.get("UpscaleModelLoader", ()):
            self.choice("upscale_model", node_id, "model_name", "The upscale model.")
        return self.params

    def sampler(self, node_id: str) -> None:
        for input_name, base in _SAMPLING[self.class_of(node_id) or ""]:
            description = _DESCRIPTIONS[base]
            if base == "seed":
                self.number(base, node_id, input_name, "seed", description)
            elif base == "steps":
                self.number(base, node_id, input_name, "int", description)
            elif base in ("sampler", "scheduler"):
                self.choice(base, node_id, input_name, description, catalog=f"{base}s")
            elif base == "denoise":
                found = self.target(node_id, input_name)
                latent = _link(self.inputs(node_id).get("latent_image"))
                encoded = latent is not None and self.class_of(latent[0]) in _ENCODED
                if found is not None and (encoded or found[1] != 1):
                    self.number(base, node_id, input_name, "float", description)
            else:
                self.number(base, node_id, input_name, "float", description)

    def lora(self, node_id: str) -> None:
        self.choice("lora", node_id, "lora_name", "The LoRA.", catalog="loras")
        model, clip = self.target(node_id, "strength_model"), self.target(node_id, "strength_clip")
        description = "How strongly the LoRA applies; negative values work against it."
        if clip is not None and model is not None and clip[1] == model[1]:
            before = len(self.params)
            self.number("lora_strength", node_id, "strength_model", "float", description)
            if len(self.params) > before and clip[0] not in self.used:
                self.params[-1]["targets"].append(list(clip[0]))
                self.used.add(clip[0])
            return
        self.number("lora_strength", node_id, "strength_model", "float", description)
        self.number(
            "lora_clip_strength", node_id, "strength_clip", "float", "How strongly the LoRA changes the text encoder."
        )

    def media(self, kind: str, node_id: str, description: str) -> None:
        found = self.target(node_id, "image")
        if found is not None:
            self.add(kind, {"type": kind, "description": description}, [found[0]])


_ABSENT: Final = object()


def propose_params(api_workflow: Mapping[str, Any], object_info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Proposed parameter declarations (each a dict in `*.params.json` form) for an API-format workflow."""
    return _Proposer(api_workflow, object_info).propose()


def _link(value: Any) -> tuple[str, int] | None:
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and type(value[1]) is int:
        return value[0], value[1]
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return type(value) is int or (isinstance(value, float) and value.is_integer())


def _clamp(value: Any, low: Any, high: Any, multiple_of: Any) -> Any:
    if _is_number(low) and value < low:
        value = low
    if _is_number(high) and value > high:
        value = high
    if isinstance(multiple_of, int) and multiple_of > 1 and _is_int(value):
        value = int(value) - int(value) % multiple_of
        if _is_number(low) and value < low:
            value += multiple_of
    return value


def _node_order(node_id: str) -> tuple[int, int, str]:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)
