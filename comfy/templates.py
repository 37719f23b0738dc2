"""Workflow templates: a ComfyUI API-format workflow plus a typed parameter declaration.

A template named `x` is two files in a template directory: `x.json` (the
workflow exactly as ComfyUI's "Save (API)" writes it) and `x.params.json`:

    {"title": "...", "description": "...",
     "params": [{"name": "width", "type": "int", "default": 512, "min": 64, "max": 2048,
                 "multiple_of": 8, "description": "...", "targets": [["5", "width"]]}, ...]}

Parameter types: `string` (max_length; `multiline`, a display hint for
prompts), `int` (min, max, multiple_of), `float` (min, max), `boolean` (false
unless a default says otherwise), `enum` (`choices`, or `catalog`: one of
checkpoints, loras, samplers, schedulers — checked against the live catalogue
when one is given), `seed` (0..2^53-1, random when absent), `loras` (a list of
`{name, strength}`, at most `max_items`, strengths within min..max, inserted
as a chain of LoraLoader nodes after `source_node`, whose outputs 0 and 1 must
be MODEL and CLIP), and `image` / `mask`: an uploaded input's id (a UUID; no
default). Here an image value is checked for form only: whether the id is the
requester's input is the service's question, and the worker uploads it to the
backend and passes `build_workflow` the file name ComfyUI knows it by.
`targets` lists the `[node_id, input_name]` pairs a value is written to. A
template needs no particular parameter (an upscaler has no prompt).

`validate_params` is the one validation used by the API and the worker. It
reports every bad field at once, under the names the API exposes
(`width`, `loras[1].strength`). Operator limits (`Limits`) narrow the
parameters named `steps` and `batch_size`, `width` * `height`, and every
string parameter.

Shipped templates live next to this module; operator directories given to
`load_templates` are read after them and may replace a template by name.
Templates saved at run time are the same parts (`template_from_parts`) kept in
the database; `ParamSpec.to_json` and `template_digest` give their canonical
JSON and its SHA-256, so an unchanged template is recognised as such.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import secrets
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from comfy.catalog import Catalog
from comfy.workflow_check import check_workflow

if TYPE_CHECKING:
    from settings import Settings

__all__ = [
    "INPUT_TYPES",
    "MAX_LORAS",
    "MAX_SEED",
    "RAW_TEMPLATE",
    "FieldError",
    "Limits",
    "ParamSpec",
    "ParamValidationError",
    "Template",
    "TemplateError",
    "ValidatedParams",
    "build_workflow",
    "check_built_workflow",
    "check_raw_workflow",
    "check_template",
    "input_params",
    "input_targets",
    "load_template",
    "load_templates",
    "template_digest",
    "template_from_parts",
    "validate_params",
]

SHIPPED_DIR: Final = Path(__file__).resolve().parent / "templates"
MAX_SEED: Final = 2**53 - 1  # the largest integer JavaScript represents exactly
MAX_LORAS: Final = 8
RAW_TEMPLATE: Final = "raw"  # the template name of an admin's raw workflow (check_raw_workflow)
PARAM_TYPES: Final = frozenset({"string", "int", "float", "boolean", "enum", "seed", "loras", "image", "mask"})
# Parameters whose value is an uploaded input's id; the workflow gets the file name on the backend.
INPUT_TYPES: Final = frozenset({"image", "mask"})
CATALOG_KINDS: Final = frozenset({"checkpoints", "loras", "samplers", "schedulers"})
_MISSING: Final = object()


class TemplateError(Exception):
    """A template file is unreadable or inconsistent; the message names the file."""


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


class ParamValidationError(ValueError):
    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in self.errors))


@dataclass(frozen=True, slots=True)
class Limits:
    max_batch_size: int = 8
    max_pixels: int = 2048 * 2048
    max_steps: int = 150
    max_prompt_length: int = 4000

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_batch_size=settings.max_batch_size,
            max_pixels=settings.max_pixels,
            max_steps=settings.max_steps,
            max_prompt_length=settings.max_prompt_length,
        )


@dataclass(frozen=True, slots=True)
class ParamSpec:
    name: str
    type: str
    description: str = ""
    default: Any = None
    has_default: bool = False
    required: bool = False
    min: float | None = None
    max: float | None = None
    multiple_of: int | None = None
    max_length: int | None = None
    max_items: int | None = None
    choices: tuple[str, ...] | None = None
    catalog: str | None = None
    source_node: str | None = None
    multiline: bool = False  # display hint for strings: a text area, not a line
    targets: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, raw: Any) -> ParamSpec:
        if not isinstance(raw, Mapping):
            raise ValueError("a parameter must be an object")
        known = {f for f in cls.__dataclass_fields__ if f != "has_default"}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"parameter {raw.get('name')!r} has unknown keys {sorted(unknown)}")
        name = raw.get("name")
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"parameter name {name!r} is not an identifier")
        kind = raw.get("type")
        if kind not in PARAM_TYPES:
            raise ValueError(f"parameter {name!r} has type {kind!r}; expected one of {sorted(PARAM_TYPES)}")
        catalog = raw.get("catalog")
        if catalog is not None and catalog not in CATALOG_KINDS:
            raise ValueError(f"parameter {name!r} has catalog {catalog!r}; expected {sorted(CATALOG_KINDS)}")
        choices = raw.get("choices")
        if choices is not None and (not isinstance(choices, list) or not all(isinstance(c, str) for c in choices)):
            raise ValueError(f"parameter {name!r}: choices must be a list of strings")
        if kind == "enum" and choices is None and catalog is None:
            raise ValueError(f"enum parameter {name!r} needs choices or a catalog")
        targets_raw = raw.get("targets", [])
        if not isinstance(targets_raw, list) or not all(
            isinstance(t, list) and len(t) == 2 and all(isinstance(p, str) for p in t) for t in targets_raw
        ):
            raise ValueError(f"parameter {name!r}: targets must be [[node_id, input_name], ...]")
        if kind == "loras" and not isinstance(raw.get("source_node"), str):
            raise ValueError(f"loras parameter {name!r} needs a source_node (the checkpoint loader)")
        multiline = raw.get("multiline", False)
        if not isinstance(multiline, bool):
            raise ValueError(f"parameter {name!r}: multiline must be true or false")
        if multiline and kind != "string":
            raise ValueError(f"parameter {name!r}: only string parameters can be multiline")
        if kind in INPUT_TYPES and raw.get("default") is not None:
            raise ValueError(f"{kind} parameter {name!r} cannot have a default (its value is an uploaded input)")
        for key in ("min", "max"):
            if raw.get(key) is not None and not _is_number(raw[key]):
                raise ValueError(f"parameter {name!r}: {key} must be a number")
        for key in ("multiple_of", "max_length", "max_items"):
            value = raw.get(key)
            if value is not None and (type(value) is not int or value < 1):
                raise ValueError(f"parameter {name!r}: {key} must be a positive integer")
        return cls(
            name=name,
            type=kind,
            description=str(raw.get("description", "")),
            default=raw.get("default"),
            has_default="default" in raw,
            required=bool(raw.get("required", False)),
            min=raw.get("min"),
            max=raw.get("max"),
            multiple_of=raw.get("multiple_of"),
            max_length=raw.get("max_length"),
            max_items=raw.get("max_items"),
            choices=None if choices is None else tuple(choices),
            catalog=catalog,
            source_node=raw.get("source_node"),
            multiline=multiline,
            targets=tuple((t[0], t[1]) for t in targets_raw),
        )

    def to_json(self) -> dict[str, Any]:
        """The declaration in *.params.json form, keys that say nothing left out: `parse` reads it back."""
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.description:
            out["description"] = self.description
        if self.has_default:
            out["default"] = copy.deepcopy(self.default)
        if self.required:
            out["required"] = True
        for key in ("min", "max", "multiple_of", "max_length", "max_items", "catalog", "source_node"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.multiline:
            out["multiline"] = True
        out["targets"] = [[node, name] for node, name in self.targets]
        return out


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    title: str
    description: str
    workflow: Mapping[str, Any]
    params: tuple[ParamSpec, ...]

    def param(self, name: str) -> ParamSpec:
        for spec in self.params:
            if spec.name == name:
                return spec
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class ValidatedParams:
    """Parameters that passed `validate_params`; `values` holds every parameter, seed resolved."""

    template: str
    values: dict[str, Any]

    @property
    def seed(self) -> int | None:
        seed = self.values.get("seed")
        return seed if isinstance(seed, int) else None


# -- loading -------------------------------------------------------------------------------------


def load_templates(extra_dirs: Sequence[Path] = ()) -> dict[str, Template]:
    """The shipped templates, then those of each operator directory (later ones replace by name)."""
    templates: dict[str, Template] = {}
    for directory in (SHIPPED_DIR, *(Path(d) for d in extra_dirs)):
        if not directory.is_dir():
            raise TemplateError(f"template directory {directory} does not exist")
        for path in sorted(directory.glob("*.json")):
            if path.name.endswith(".params.json"):
                workflow_path = path.with_name(path.name.removesuffix(".params.json") + ".json")
                if not workflow_path.is_file():
                    raise TemplateError(f"{path}: no workflow file {workflow_path.name} next to it")
                continue
            template = load_template(path)
            templates[template.name] = template
    return templates


def load_template(workflow_path: Path) -> Template:
    """Read `<name>.json` and `<name>.params.json`; TemplateError names the bad file."""
    name = workflow_path.name.removesuffix(".json")
    params_path = workflow_path.with_name(f"{name}.params.json")
    workflow = _read_json(workflow_path)
    try:
        _check_workflow(workflow)
    except ValueError as exc:
        raise TemplateError(f"{workflow_path}: {exc}") from None
    if not params_path.is_file():
        raise TemplateError(f"{workflow_path}: missing parameter declaration {params_path.name}")
    declaration = _read_json(params_path)
    try:
        if not isinstance(declaration, Mapping) or not isinstance(declaration.get("params"), list):
            raise ValueError('expected {"title", "description", "params": [...]}')
        return template_from_parts(
            name=name,
            title=str(declaration.get("title") or name),
            description=str(declaration.get("description") or ""),
            workflow=workflow,
            params=declaration["params"],
        )
    except ValueError as exc:
        raise TemplateError(f"{params_path}: {exc}") from None


def template_from_parts(*, name: str, title: str, description: str, workflow: Any, params: Sequence[Any]) -> Template:
    """A template from its parts (a directory's files, a database row, an admin's upload).

    Raises ValueError naming what is wrong: the workflow's shape, a parameter's declaration, or a
    target that is not an input of the workflow.
    """
    _check_workflow(workflow)
    template = Template(
        name=name,
        title=title or name,
        description=description,
        workflow=workflow,
        params=tuple(ParamSpec.parse(p) for p in params),
    )
    _check_params(template)
    return template


def template_digest(workflow: Mapping[str, Any], params: Sequence[ParamSpec]) -> str:
    """SHA-256 of the canonical JSON of a workflow and its parameters: equal templates, equal digests."""
    canonical = json.dumps(
        {"workflow": workflow, "params": [p.to_json() for p in params]},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise TemplateError(f"{path}: cannot read JSON: {exc}") from None


def _check_workflow(workflow: Any) -> None:
    if not isinstance(workflow, Mapping) or not workflow:
        raise ValueError("a workflow must be a non-empty object of nodes (ComfyUI API format)")
    for node_id, node in workflow.items():
        if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
            raise ValueError(f"node {node_id!r} has no class_type (is this the API format?)")
        if not isinstance(node.get("inputs"), Mapping):
            raise ValueError(f"node {node_id!r} has no inputs object")


def _check_params(template: Template) -> None:
    seen: set[str] = set()
    for spec in template.params:
        if spec.name in seen:
            raise ValueError(f"parameter {spec.name!r} is declared twice")
        seen.add(spec.name)
        for node_id, input_name in spec.targets:
            node = template.workflow.get(node_id)
            if node is None:
                raise ValueError(f"parameter {spec.name!r} targets node {node_id!r}, which does not exist")
            if input_name not in node["inputs"]:
                raise ValueError(
                    f"parameter {spec.name!r} targets input {input_name!r} of node {node_id!r} "
                    f"({node['class_type']}), which has no such input"
                )
        if spec.source_node is not None and spec.source_node not in template.workflow:
            raise ValueError(f"parameter {spec.name!r} has source_node {spec.source_node!r}, which does not exist")
        if spec.has_default and spec.default is not None:
            errors: list[FieldError] = []
            _check_value(spec, spec.default, None, Limits(), errors)
            if errors:
                raise ValueError(f"default of {spec.name!r} is invalid: {errors[0].message}")


# -- validation ----------------------------------------------------------------------------------


def validate_params(
    template: Template,
    raw: Mapping[str, Any],
    *,
    catalog: Catalog | None = None,
    limits: Limits | None = None,
) -> ValidatedParams:
    """Check `raw` against the template (and the live catalogue and limits when given).

    Absent or null parameters take their default; an absent seed becomes a
    random one. Raises ParamValidationError listing every bad field.
    """
    limits = limits or Limits()
    errors: list[FieldError] = []
    names = {spec.name for spec in template.params}
    errors.extend(FieldError(str(key), "unknown parameter") for key in raw if key not in names)

    values: dict[str, Any] = {}
    for spec in template.params:
        value = raw.get(spec.name)
        if value is None:
            value = _default(spec, catalog, errors)
            if value is _MISSING:
                continue
            if value is None:  # optional, no default
                values[spec.name] = None
                continue
        checked = _check_value(spec, value, catalog, limits, errors)
        if checked is not _MISSING:
            values[spec.name] = checked

    width, height = values.get("width"), values.get("height")
    if isinstance(width, int) and isinstance(height, int) and width * height > limits.max_pixels:
        message = f"width * height = {width * height} pixels exceeds the limit of {limits.max_pixels}"
        errors.append(FieldError("width", message))
    if errors:
        raise ParamValidationError(errors)
    return ValidatedParams(template.name, values)


def _default(spec: ParamSpec, catalog: Catalog | None, errors: list[FieldError]) -> Any:
    if spec.type == "seed":
        return secrets.randbelow(int(spec.max if spec.max is not None else MAX_SEED) + 1)
    if spec.has_default and spec.default is not None:
        return copy.deepcopy(spec.default)
    if spec.type == "boolean":
        return False
    if spec.type == "enum" and spec.catalog is not None and catalog is not None and not spec.required:
        options = catalog.choices(spec.catalog)
        if options:
            return options[0]
        errors.append(FieldError(spec.name, f"the backends offer no {spec.catalog}"))
        return _MISSING
    if spec.required or not spec.has_default:
        errors.append(FieldError(spec.name, "is required"))
        return _MISSING
    return None


def _check_value(spec: ParamSpec, value: Any, catalog: Catalog | None, limits: Limits, errors: list[FieldError]) -> Any:
    name = spec.name
    kind = spec.type
    if kind == "string":
        if not isinstance(value, str):
            errors.append(FieldError(name, "must be a string"))
            return _MISSING
        max_length = min(spec.max_length or limits.max_prompt_length, limits.max_prompt_length)
        if len(value) > max_length:
            errors.append(FieldError(name, f"must be at most {max_length} characters"))
        elif spec.required and not value.strip():
            errors.append(FieldError(name, "must not be empty"))
        return value
    if kind in ("int", "seed"):
        if type(value) is not int:
            errors.append(FieldError(name, "must be an integer"))
            return _MISSING
        low = _int_bound(spec.min, 0 if kind == "seed" else None)
        high = _int_bound(spec.max, MAX_SEED if kind == "seed" else None)
        if name == "steps":
            high = limits.max_steps if high is None else min(high, limits.max_steps)
        elif name == "batch_size":
            high = limits.max_batch_size if high is None else min(high, limits.max_batch_size)
        if (low is not None and value < low) or (high is not None and value > high):
            errors.append(FieldError(name, _range_message(low, high)))
        elif spec.multiple_of and value % spec.multiple_of:
            errors.append(FieldError(name, f"must be a multiple of {spec.multiple_of}"))
        return value
    if kind == "float":
        if not _is_number(value) or not math.isfinite(value):
            errors.append(FieldError(name, "must be a number"))
            return _MISSING
        if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
            errors.append(FieldError(name, _range_message(spec.min, spec.max)))
        return float(value)
    if kind == "enum":
        if not isinstance(value, str):
            errors.append(FieldError(name, "must be a string"))
            return _MISSING
        _check_choice(name, value, spec.choices, spec.catalog, catalog, errors)
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            errors.append(FieldError(name, "must be true or false"))
            return _MISSING
        return value
    if kind in INPUT_TYPES:
        # Form only: whether the id names one of the requester's inputs is the service's check.
        input_id = _input_id(value)
        if input_id is None:
            errors.append(FieldError(name, "must be the id of an uploaded input"))
            return _MISSING
        return input_id
    if kind == "loras":
        return _check_loras(spec, value, catalog, errors)
    raise AssertionError(f"unhandled parameter type {kind}")


def _input_id(value: Any) -> str | None:
    """An input id in its canonical form (lower-case, hyphenated), None if `value` is not a UUID."""
    if not isinstance(value, str) or len(value) > 64:  # bounded before parsing
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _check_choice(
    field: str,
    value: str,
    choices: tuple[str, ...] | None,
    kind: str | None,
    catalog: Catalog | None,
    errors: list[FieldError],
) -> None:
    options: tuple[str, ...] | None = choices
    if options is None and kind is not None and catalog is not None:
        options = catalog.choices(kind)
    if options is not None and value not in options:
        what = f"available {kind}" if kind else "choices"
        shown = ", ".join(options[:10]) + (", ..." if len(options) > 10 else "")
        errors.append(FieldError(field, f"{value!r} is not one of the {what} ({shown or 'none'})"))


def _check_loras(spec: ParamSpec, value: Any, catalog: Catalog | None, errors: list[FieldError]) -> Any:
    name = spec.name
    if not isinstance(value, list | tuple):
        errors.append(FieldError(name, "must be a list of {name, strength}"))
        return _MISSING
    max_items = min(spec.max_items or MAX_LORAS, MAX_LORAS)
    if len(value) > max_items:
        errors.append(FieldError(name, f"at most {max_items} LoRAs"))
        return _MISSING
    low = -4.0 if spec.min is None else float(spec.min)
    high = 4.0 if spec.max is None else float(spec.max)
    out: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(item, Mapping):
            errors.append(FieldError(where, "must be an object with name and strength"))
            continue
        errors.extend(FieldError(f"{where}.{key}", "unknown field") for key in item if key not in ("name", "strength"))
        lora = item.get("name")
        if not isinstance(lora, str) or not lora:
            errors.append(FieldError(f"{where}.name", "is required" if lora is None else "must be a string"))
        else:
            _check_choice(f"{where}.name", lora, spec.choices, spec.catalog, catalog, errors)
        strength = item.get("strength", 1.0)
        if strength is None:
            strength = 1.0
        if not _is_number(strength) or not math.isfinite(strength):
            errors.append(FieldError(f"{where}.strength", "must be a number"))
        elif not low <= strength <= high:
            errors.append(FieldError(f"{where}.strength", _range_message(low, high)))
        else:
            out.append({"name": lora, "strength": float(strength)})
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_bound(bound: float | None, fallback: int | None) -> int | None:
    return fallback if bound is None else int(bound)


def _range_message(low: float | None, high: float | None) -> str:
    def fmt(v: float) -> str:
        return str(int(v)) if float(v).is_integer() else str(v)

    if low is not None and high is not None:
        return f"must be between {fmt(low)} and {fmt(high)}"
    if low is not None:
        return f"must be at least {fmt(low)}"
    assert high is not None
    return f"must be at most {fmt(high)}"


# -- building ------------------------------------------------------------------------------------


def build_workflow(
    template: Template,
    params: ValidatedParams,
    *,
    filename_prefix: str,
    input_files: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A fresh API-format workflow with the parameters written in and outputs named `filename_prefix`.

    `input_files` maps each image/mask parameter's input id to the file name the worker uploaded it
    as on the backend (what LoadImage reads); every such value must be there. Without it (the API's
    check before anything is uploaded) the input id itself is written, and `check_built_workflow`
    does not hold those inputs to the backend's file list.
    """
    if params.template != template.name:
        raise ValueError(f"parameters were validated for {params.template!r}, not {template.name!r}")
    workflow: dict[str, Any] = copy.deepcopy(dict(template.workflow))
    for spec in template.params:
        if spec.name not in params.values or spec.type == "loras":
            continue
        value = params.values[spec.name]
        if spec.type in INPUT_TYPES and value is None:
            continue  # an optional input left out: the workflow keeps its own file
        if spec.type in INPUT_TYPES and input_files is not None:
            if value not in input_files:
                raise ValueError(f"input {value} of parameter {spec.name!r} was not uploaded to the backend")
            value = input_files[value]
        for node_id, input_name in spec.targets:
            workflow[node_id]["inputs"][input_name] = copy.deepcopy(value)
    for spec in template.params:
        if spec.type == "loras" and spec.source_node is not None and params.values.get(spec.name):
            _insert_loras(workflow, spec.source_node, params.values[spec.name])
    for node in workflow.values():
        if node["class_type"] == "SaveImage" and "filename_prefix" in node["inputs"]:
            node["inputs"]["filename_prefix"] = filename_prefix
    return workflow


def _insert_loras(workflow: dict[str, Any], source: str, loras: Sequence[Mapping[str, Any]]) -> None:
    """Route `source`'s MODEL (output 0) and CLIP (output 1) through a chain of LoraLoader nodes."""
    numeric = [int(k) for k in workflow if k.isdigit()]
    next_id = max(numeric, default=0) + 1
    model: list[Any] = [source, 0]
    clip: list[Any] = [source, 1]
    chain: list[str] = []
    for index, lora in enumerate(loras):
        while str(next_id) in workflow:
            next_id += 1
        node_id = str(next_id)
        next_id += 1
        chain.append(node_id)
        workflow[node_id] = {
            "class_type": "LoraLoader",
            "inputs": {
                "lora_name": lora["name"],
                "strength_model": lora["strength"],
                "strength_clip": lora["strength"],
                "model": model,
                "clip": clip,
            },
            "_meta": {"title": f"LoRA {index + 1}"},
        }
        model, clip = [node_id, 0], [node_id, 1]
    chained = set(chain)
    for node_id, node in workflow.items():
        if node_id in chained:
            continue
        inputs = node["inputs"]
        for key, link in inputs.items():
            if isinstance(link, list) and len(link) == 2 and link[0] == source:
                if link[1] == 0:
                    inputs[key] = list(model)
                elif link[1] == 1:
                    inputs[key] = list(clip)


def check_template(template: Template, object_info: Mapping[str, Any]) -> list[FieldError]:
    """The template's own workflow against the backends' `/object_info`, before any request.

    Inputs a parameter is written to are checked for existence and links only (their values come
    with each request and are checked then, by `check_built_workflow`).
    """
    targets = {target for spec in template.params for target in spec.targets}
    problems = check_workflow(template.workflow, object_info, skip_values=targets)
    return [FieldError(p.field, p.message) for p in problems]


def input_params(template: Template, params: ValidatedParams) -> dict[str, str]:
    """Parameter name → input id, for the template's image and mask parameters that have a value."""
    out: dict[str, str] = {}
    for spec in template.params:
        value = params.values.get(spec.name)
        if spec.type in INPUT_TYPES and isinstance(value, str):
            out[spec.name] = value
    return out


def input_targets(template: Template) -> set[tuple[str, str]]:
    """The node inputs image/mask parameters are written to: a loader's file choice lists the backend's
    input directory, which holds our file only once the worker has uploaded it."""
    return {target for spec in template.params if spec.type in INPUT_TYPES for target in spec.targets}


def check_built_workflow(
    template: Template, workflow: Mapping[str, Any], object_info: Mapping[str, Any]
) -> list[FieldError]:
    """`build_workflow`'s result checked against the backends' `/object_info` (comfy.workflow_check).

    A problem in an input a parameter is written to is reported under that parameter's name (and a
    problem in an inserted LoRA node under the loras parameter's); any other is the template's own,
    reported under `workflow.<node>.inputs.<input>` with the template named.
    """
    owners: dict[tuple[str, str], str] = {}
    for spec in template.params:
        for target in spec.targets:
            owners.setdefault(target, spec.name)
    loras = next((spec.name for spec in template.params if spec.type == "loras"), None)
    errors: list[FieldError] = []
    for problem in check_workflow(workflow, object_info, skip_values=input_targets(template)):
        node, name = problem.node_id, problem.input_name
        if node is not None and name is not None and (node, name) in owners:
            errors.append(FieldError(owners[node, name], problem.message))
        elif node is not None and node not in template.workflow and loras is not None:
            errors.append(FieldError(loras, problem.message))
        else:
            message = f"template {template.name!r} does not fit the backends: {problem.message}"
            errors.append(FieldError(problem.field, message))
    return errors


def check_raw_workflow(
    workflow: Any,
    *,
    allowed_classes: Collection[str],
    filename_prefix: str | None = None,
    max_nodes: int = 500,
    object_info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An admin's raw API-format workflow, shape-checked and held to the node-class allowlist.

    With `object_info` (the backends' live node classes), also checked against it: each class,
    input, link, value and choice (comfy.workflow_check). Returns a fresh copy (with SaveImage
    outputs named `filename_prefix` when given); raises ParamValidationError with fields like
    `workflow.7.class_type` and `workflow.1.inputs.width`.
    """
    if not isinstance(workflow, Mapping) or not workflow:
        raise ParamValidationError([FieldError("workflow", "must be a non-empty object of nodes")])
    if len(workflow) > max_nodes:
        raise ParamValidationError([FieldError("workflow", f"at most {max_nodes} nodes")])
    errors: list[FieldError] = []
    for node_id, node in workflow.items():
        where = f"workflow.{node_id}"
        if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
            errors.append(FieldError(f"{where}.class_type", "is required"))
            continue
        if not isinstance(node.get("inputs"), Mapping):
            errors.append(FieldError(f"{where}.inputs", "must be an object"))
        node_class = node["class_type"]
        if node_class not in allowed_classes:
            errors.append(FieldError(f"{where}.class_type", f"node class {node_class!r} is not allowed"))
    if not errors and object_info is not None:
        errors.extend(FieldError(p.field, p.message) for p in check_workflow(workflow, object_info))
    if errors:
        raise ParamValidationError(errors)
    copied: dict[str, Any] = copy.deepcopy(dict(workflow))
    if filename_prefix is not None:
        for node in copied.values():
            if node["class_type"] == "SaveImage" and "filename_prefix" in node["inputs"]:
                node["inputs"]["filename_prefix"] = filename_prefix
    return copied
