"""An API-format workflow checked against a backend's `/object_info`, before anything is queued.

Pure: `check_workflow(workflow, object_info)` reads nothing else and lists every problem it finds,
each naming its node and input the way the API reports fields (`workflow.1.inputs.width`). It
follows what ComfyUI's own `validate_inputs` refuses, a little stricter where a value is plainly of
the wrong kind (a string for an INT, a literal where a link is needed):

- unknown `class_type`, or none; `inputs` not an object;
- a required input missing; an input the class does not declare (required, optional or hidden);
- a link (`[node_id, output_index]`) to a node that does not exist, an output it does not have, or
  an output whose type the input does not take. Types match as ComfyUI matches them: equal, `*` on
  either side, or comma-separated unions that overlap (`IMAGE,MASK`); a choice list is `COMBO`;
- a literal of the wrong kind for INT, FLOAT, BOOLEAN, STRING, or a literal for an input that only
  takes a link (MODEL, IMAGE, ...);
- a number below `min` or above `max`;
- a value a choice input (COMBO, either form) does not offer;
- no output node at all (ComfyUI answers `prompt_no_outputs`).

A node that declares one of newer ComfyUI's structural inputs (autogrow, dynamic combo or slot)
is not held to its declared input names, which those expand beyond.

Inputs named in `skip_values` (pairs of node id and input) are checked for existence and links only:
a template's parameters are written there later and checked when they are.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["WorkflowProblem", "check_workflow", "input_spec"]

_ANY: Final = frozenset({"*", "COMFY_MATCHTYPE_V3"})  # match every type (MatchType: the frontend checks it)
# Newer ComfyUI's structural inputs (autogrow, dynamic combo, dynamic slot) expand into inputs whose
# names `/object_info` does not list: a node declaring one is not held to its declared names.
_DYNAMIC: Final = frozenset({"COMFY_AUTOGROW_V3", "COMFY_DYNAMICCOMBO_V3", "COMFY_DYNAMICSLOT_V3"})
_MAX_SHOWN: Final = 10
_MAX_PROBLEMS: Final = 100


@dataclass(frozen=True, slots=True)
class WorkflowProblem:
    node_id: str | None  # None: the workflow as a whole
    input_name: str | None  # None: the node itself (its class_type or inputs object)
    message: str
    part: str = "inputs"  # what of the node is wrong when input_name is None: "class_type" or "inputs"

    @property
    def field(self) -> str:
        if self.node_id is None:
            return "workflow"
        if self.input_name is None:
            return f"workflow.{self.node_id}.{self.part}"
        return f"workflow.{self.node_id}.inputs.{self.input_name}"


def check_workflow(
    workflow: Mapping[str, Any],
    object_info: Mapping[str, Any],
    *,
    skip_values: Collection[tuple[str, str]] = (),
) -> list[WorkflowProblem]:
    """Every problem of `workflow` against `object_info` (at most 100); empty when ComfyUI should take it."""
    problems: list[WorkflowProblem] = []
    has_output = False
    for raw_id, node in workflow.items():
        if len(problems) >= _MAX_PROBLEMS:
            return problems[:_MAX_PROBLEMS]
        node_id = str(raw_id)
        if not isinstance(node, Mapping):
            problems.append(
                WorkflowProblem(node_id, None, "must be an object with class_type and inputs", "class_type")
            )
            continue
        class_type = node.get("class_type")
        if not isinstance(class_type, str) or not class_type:
            problems.append(WorkflowProblem(node_id, None, "is required", "class_type"))
            continue
        spec = object_info.get(class_type)
        if not isinstance(spec, Mapping):
            message = f"node class {class_type!r} is not offered by the backends"
            problems.append(WorkflowProblem(node_id, None, message, "class_type"))
            continue
        has_output = has_output or spec.get("output_node") is True
        inputs = node.get("inputs")
        if not isinstance(inputs, Mapping):
            problems.append(WorkflowProblem(node_id, None, "must be an object", "inputs"))
            continue
        _check_node(node_id, class_type, inputs, spec, workflow, object_info, skip_values, problems)
    if workflow and not problems and not has_output:
        problems.append(WorkflowProblem(None, None, "has no output node (such as SaveImage); ComfyUI runs nothing"))
    return problems[:_MAX_PROBLEMS]


def input_spec(spec: Mapping[str, Any], name: str) -> tuple[str, Any] | None:
    """The section ("required", "optional", "hidden") and declaration of input `name`, None if undeclared."""
    declared = spec.get("input")
    if not isinstance(declared, Mapping):
        return None
    for section in ("required", "optional", "hidden"):
        group = declared.get(section)
        if isinstance(group, Mapping) and name in group:
            return section, group[name]
    return None


def _check_node(
    node_id: str,
    class_type: str,
    inputs: Mapping[str, Any],
    spec: Mapping[str, Any],
    workflow: Mapping[str, Any],
    object_info: Mapping[str, Any],
    skip_values: Collection[tuple[str, str]],
    problems: list[WorkflowProblem],
) -> None:
    declared = spec.get("input")
    required = declared.get("required") if isinstance(declared, Mapping) else None
    if isinstance(required, Mapping):
        for name in required:
            if name not in inputs:
                problems.append(WorkflowProblem(node_id, str(name), f"is required by {class_type}"))
    dynamic = _has_dynamic_inputs(declared)
    for raw_name, value in inputs.items():
        name = str(raw_name)
        found = input_spec(spec, name)
        if found is None:
            if not dynamic:
                problems.append(WorkflowProblem(node_id, name, f"{class_type} has no input {name!r}"))
            continue
        section, declaration = found
        if section == "hidden":
            continue  # filled in by ComfyUI (PROMPT, EXTRA_PNGINFO, UNIQUE_ID); whatever is sent is replaced
        kind, options = _declared_type(declaration)
        if kind in _DYNAMIC:
            continue
        if isinstance(value, list):
            message = _check_link(value, kind, workflow, object_info)
        elif (node_id, name) in skip_values:
            continue
        else:
            message = _check_literal(value, kind, options)
        if message is not None:
            problems.append(WorkflowProblem(node_id, name, message))


def _has_dynamic_inputs(declared: Any) -> bool:
    if not isinstance(declared, Mapping):
        return False
    for section in ("required", "optional"):
        group = declared.get(section)
        if isinstance(group, Mapping) and any(_declared_type(entry)[0] in _DYNAMIC for entry in group.values()):
            return True
    return False


def _declared_type(declaration: Any) -> tuple[str, Mapping[str, Any]]:
    """(type, options) of an input declaration; a choice list becomes ("COMBO", {"options": [...]})."""
    if isinstance(declaration, str):  # hidden inputs are declared by their type name alone
        return declaration, {}
    if not isinstance(declaration, list | tuple) or not declaration:
        return "*", {}
    head = declaration[0]
    options = declaration[1] if len(declaration) > 1 and isinstance(declaration[1], Mapping) else {}
    if isinstance(head, list | tuple):
        return "COMBO", {**options, "options": list(head)}
    return (head if isinstance(head, str) else "*"), options


def _output_type(spec: Mapping[str, Any], index: int) -> str | None:
    outputs = spec.get("output")
    if not isinstance(outputs, list | tuple) or not 0 <= index < len(outputs):
        return None
    kind = outputs[index]
    if isinstance(kind, list | tuple):  # a node that outputs one of a list of choices
        return "COMBO"
    return kind if isinstance(kind, str) else "*"


def _types_match(received: str, wanted: str) -> bool:
    if received == wanted or received in _ANY or wanted in _ANY:
        return True
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in wanted.split(",")}
    return bool(got & want) or bool((got | want) & _ANY)


def _check_link(value: list[Any], kind: str, workflow: Mapping[str, Any], object_info: Mapping[str, Any]) -> str | None:
    if len(value) != 2 or not isinstance(value[0], str) or type(value[1]) is not int:
        return "a link must be [node_id, output_index] (a string and an integer)"
    source_id, index = value
    source = workflow.get(source_id)
    if not isinstance(source, Mapping):
        return f"links to node {source_id!r}, which does not exist"
    source_class = source.get("class_type")
    source_spec = object_info.get(source_class) if isinstance(source_class, str) else None
    if not isinstance(source_spec, Mapping):
        return None  # the source node's own problem is reported on it
    received = _output_type(source_spec, index)
    if received is None:
        return f"links to output {index} of node {source_id!r} ({source_class}), which has no such output"
    if not _types_match(received, kind):
        return f"takes {kind}, but output {index} of node {source_id!r} ({source_class}) is {received}"
    return None


def _check_literal(value: Any, kind: str, options: Mapping[str, Any]) -> str | None:
    if kind in _ANY:
        return None
    if kind == "COMBO":
        return _check_choice(value, options)
    kinds = {t.strip() for t in kind.split(",")}
    if len(kinds) > 1:  # a union that takes a widget value: accept any literal one of its kinds takes
        return None if any(_check_literal(value, k, options) is None for k in kinds) else f"must be one of {kind}"
    if kind == "INT":
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value.is_integer())
        ):
            return f"must be an integer, not {_describe(value)}"
        return _check_range(value, options)
    if kind == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return f"must be a number, not {_describe(value)}"
        return _check_range(value, options)
    if kind == "BOOLEAN":
        return None if isinstance(value, bool) else f"must be true or false, not {_describe(value)}"
    if kind == "STRING":
        return None if isinstance(value, str) else f"must be a string, not {_describe(value)}"
    return f"takes a link to a {kind} output ([node_id, output_index]), not a value"


def _check_range(value: float, options: Mapping[str, Any]) -> str | None:
    low, high = options.get("min"), options.get("max")
    if isinstance(low, int | float) and not isinstance(low, bool) and value < low:
        return f"{_fmt(value)} is below the minimum of {_fmt(low)}"
    if isinstance(high, int | float) and not isinstance(high, bool) and value > high:
        return f"{_fmt(value)} is above the maximum of {_fmt(high)}"
    return None


def _check_choice(value: Any, options: Mapping[str, Any]) -> str | None:
    offered = options.get("options")
    if not isinstance(offered, list | tuple):
        return None  # a COMBO whose choices are not listed (filled in by the frontend): nothing to check
    if value in offered and not isinstance(value, bool | list | dict):
        return None
    shown = ", ".join(repr(o) for o in offered[:_MAX_SHOWN]) + (", ..." if len(offered) > _MAX_SHOWN else "")
    return f"{_describe(value)} is not one of the choices offered ({shown or 'none'})"


def _fmt(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "...")
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return _fmt(value)
    return type(value).__name__
