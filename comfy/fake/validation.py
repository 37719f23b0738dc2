"""Prompt validation with the exact error bodies ComfyUI answers (HTTP 400) — recordings 11 and 14.

Upstream (0.3.64) and the packaging (0.12.1) differ in a few bodies: an unknown or missing class_type is
`invalid_prompt` with an empty `extra_info` upstream (`missing_node_type` naming the node in the
packaging); `prompt_outputs_failed_validation` has an empty `extra_info` upstream; a return type mismatch
is worded differently; the tracebacks name other files.

The walk follows ComfyUI's `validate_prompt`/`validate_inputs`: class checks first, then each output node
validated recursively through its links; an invalid upstream node makes its dependants invalid without
errors of their own, and `dependent_outputs` lists the output nodes that were being validated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from comfy.fake.catalog import CUSTOM_VALIDATION, NODES, LiveChoices

# The stack ComfyUI 0.12.1 reports for a plain validation failure (copied from recording 11).
_VALIDATION_STACK = [
    '  File "/opt/ComfyUI/main.py", line 16, in <module>\n'
    "    asyncio.run(_start_comfyui(from_script_dir=this_file_parent_dir))\n",
    '  File "/usr/lib/python3.11/asyncio/runners.py", line 190, in run\n    return runner.run(main)\n',
    '  File "/usr/lib/python3.11/asyncio/runners.py", line 118, in run\n'
    "    return self._loop.run_until_complete(task)\n",
    '  File "/usr/lib/python3.11/asyncio/base_events.py", line 640, in run_until_complete\n    self.run_forever()\n',
    '  File "/usr/lib/python3.11/asyncio/base_events.py", line 607, in run_forever\n    self._run_once()\n',
    '  File "/usr/lib/python3.11/asyncio/base_events.py", line 1922, in _run_once\n    handle._run()\n',
    '  File "/usr/lib/python3.11/asyncio/events.py", line 80, in _run\n'
    "    self._context.run(self._callback, *self._args)\n",
    '  File "/opt/ComfyUI/.venv/lib/python3.11/site-packages/aiohttp/web_protocol.py", line 577, in '
    "_handle_request\n    resp = await request_handler(request)\n",
    '  File "/opt/ComfyUI/.venv/lib/python3.11/site-packages/aiohttp/web_app.py", line 563, in _handle\n'
    "    return await handler(request)\n",
    '  File "/opt/ComfyUI/.venv/lib/python3.11/site-packages/aiohttp/web_middlewares.py", line 117, in impl\n'
    "    return await handler(request)\n",
    '  File "/opt/ComfyUI/.venv/lib/python3.11/site-packages/opentelemetry/instrumentation/aiohttp_server/'
    '__init__.py", line 444, in _middleware\n    resp = await handler(request)\n',
    '  File "/opt/ComfyUI/comfy/cmd/server.py", line 157, in opentelemetry_middleware\n'
    "    response = await handler(request)\n",
    '  File "/opt/ComfyUI/comfy/middleware/cache_middleware.py", line 27, in cache_control\n'
    "    response: web.Response = await handler(request)\n",
    '  File "/opt/ComfyUI/comfy/cmd/server.py", line 128, in deprecation_warning\n'
    "    response: web.Response = await handler(request)\n",
    '  File "/opt/ComfyUI/comfy/cmd/server.py", line 237, in origin_only_middleware\n'
    "    response = await handler(request)\n",
    '  File "/opt/ComfyUI/comfy/cmd/server.py", line 961, in post_prompt\n'
    "    valid = await execution.validate_prompt(prompt_id, prompt, partial_execution_targets)\n",
    '  File "/opt/ComfyUI/.venv/lib/python3.11/site-packages/opentelemetry/util/_decorator.py", line 61, in '
    "async_wrapper\n    return await func(*args, **kwargs)  # type: ignore\n",
    '  File "/opt/ComfyUI/comfy/cmd/execution.py", line 1205, in validate_prompt\n'
    "    res = await _validate_prompt(prompt_id, prompt, partial_execution_list)\n",
    '  File "/opt/ComfyUI/comfy/cmd/execution.py", line 1348, in _validate_prompt\n'
    "    extra_info['traceback'] = traceback.format_stack()\n",
]
# The frames upstream ComfyUI reports when validating a link to a node id that is not in the prompt.
_UPSTREAM_LINK_TRACEBACK = [
    '  File "/srv/ComfyUI/execution.py", line 1010, in validate_prompt\n'
    "    m = await validate_inputs(prompt_id, prompt, o, validated)\n"
    "        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n",
    '  File "/srv/ComfyUI/execution.py", line 788, in validate_inputs\n'
    "    o_class_type = prompt[o_id]['class_type']\n"
    "                   ~~~~~~^^^^^^\n",
]
# The same frames in the packaging.
_LINK_TRACEBACK = [
    '  File "/opt/ComfyUI/comfy/cmd/execution.py", line 1282, in _validate_prompt\n'
    "    m = await validate_inputs(prompt_id, prompt, o, validated)\n"
    "        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n",
    '  File "/opt/ComfyUI/comfy/cmd/execution.py", line 1008, in validate_inputs\n'
    "    o_class_type = prompt[o_id]['class_type']\n"
    "                   ~~~~~~^^^^^^\n",
]

_CONVERTERS: dict[str, Any] = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}

Result = tuple[bool, list[dict[str, Any]], str]


@dataclass(frozen=True)
class Live:
    """What validation reads from the running fake: folder-listing combos and uploaded input files."""

    choices: LiveChoices = field(default_factory=dict)
    input_exists: Callable[[str], bool] = lambda name: False


@dataclass(frozen=True)
class Accepted:
    prompt: dict[str, Any]
    """The prompt with widget values converted to their declared types, as ComfyUI stores it."""
    outputs: list[str]
    node_errors: dict[str, Any]


@dataclass(frozen=True)
class Rejected:
    body: dict[str, Any]
    """The whole HTTP 400 body: `{"error": ..., "node_errors": ...}`."""


def _error(kind: str, message: str, details: str, extra_info: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra_info}


def no_prompt() -> Rejected:
    error = _error("no_prompt", "No prompt provided", "No prompt provided", {})
    return Rejected({"error": error, "node_errors": {}})


def validate_prompt(prompt: dict[str, Any], *, upstream: bool = True, live: Live | None = None) -> Accepted | Rejected:
    """Validate an API-format prompt, answering as upstream ComfyUI or (`upstream=False`) as the packaging.
    Malformed shapes raise (the server answers 500, as ComfyUI does)."""
    live = live if live is not None else Live()
    outputs: list[str] = []
    link_traceback = _UPSTREAM_LINK_TRACEBACK if upstream else _LINK_TRACEBACK
    for node_id, node in prompt.items():
        if upstream and ("class_type" not in node or node["class_type"] not in NODES):
            message = (
                f"Cannot execute because node {node['class_type']} does not exist."
                if "class_type" in node
                else "Cannot execute because a node is missing the class_type property."
            )
            error = _error("invalid_prompt", message, f"Node ID '#{node_id}'", {})
            return Rejected({"error": error, "node_errors": {}})
        if "class_type" not in node:
            title = node.get("_meta", {}).get("title")
            error = _error(
                "missing_node_type",
                f"Node '{title or f'ID #{node_id}'}' has no class_type. "
                "The workflow may be corrupted or a custom node is missing.",
                f"Node ID '#{node_id}'",
                {"node_id": node_id, "class_type": None, "node_title": title},
            )
            return Rejected({"error": error, "node_errors": {}})
        class_type = node["class_type"]
        definition = NODES.get(class_type)
        if definition is None:
            title = node.get("_meta", {}).get("title", class_type)
            error = _error(
                "missing_node_type",
                f"Node '{title}' not found. The custom node may not be installed.",
                f"Node ID '#{node_id}'",
                {"node_id": node_id, "class_type": class_type, "node_title": title},
            )
            return Rejected({"error": error, "node_errors": {}})
        if definition.output_node:
            outputs.append(node_id)
    if not outputs:
        error = _error("prompt_no_outputs", "Prompt has no outputs", "", {})
        return Rejected({"error": error, "node_errors": {}})

    good: list[str] = []
    failures: list[tuple[str, list[dict[str, Any]]]] = []
    node_errors: dict[str, Any] = {}
    validated: dict[str, Result] = {}
    for output in outputs:
        try:
            valid, reasons, _ = _validate_inputs(prompt, output, validated, upstream, live)
        except Exception as ex:
            valid = False
            reasons = [
                _error(
                    "exception_during_validation",
                    "Exception when validating node",
                    str(ex),
                    {"exception_type": type(ex).__name__, "traceback": list(link_traceback)},
                )
            ]
            validated[output] = (False, reasons, output)
        if valid:
            good.append(output)
            continue
        failures.append((output, reasons))
        for node_id, (ok, node_reasons, _) in validated.items():
            if ok or not node_reasons:
                continue
            if node_id not in node_errors:
                node_errors[node_id] = {
                    "errors": node_reasons,
                    "dependent_outputs": [],
                    "class_type": prompt[node_id]["class_type"],
                }
            node_errors[node_id]["dependent_outputs"].append(output)

    if good:
        return Accepted(prompt=prompt, outputs=good, node_errors=node_errors)
    return Rejected({"error": _outputs_failed(failures, node_errors, upstream), "node_errors": node_errors})


def _outputs_failed(
    failures: list[tuple[str, list[dict[str, Any]]]], node_errors: dict[str, Any], upstream: bool
) -> dict[str, Any]:
    reasons = [reason for _, output_reasons in failures for reason in output_reasons]
    details = "\n".join(f"{reason['message']}: {reason['details']}" for reason in reasons)
    if upstream:
        return _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details, {})
    exception_type, traceback = "ValidationError", list(_VALIDATION_STACK)
    for reason in reasons:
        if reason["type"] == "exception_during_validation":
            exception_type = reason["extra_info"]["exception_type"]
            traceback = reason["extra_info"]["traceback"]
            break
    extra_info = {"exception_type": exception_type, "traceback": traceback, "node_errors": node_errors}
    return _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details, extra_info)


def _validate_inputs(
    prompt: dict[str, Any], node_id: str, validated: dict[str, Result], upstream: bool, live: Live
) -> Result:
    if node_id in validated:
        return validated[node_id]
    node = prompt[node_id]
    inputs: dict[str, Any] = node["inputs"]
    class_type = node["class_type"]
    definition = NODES[class_type]
    custom = CUSTOM_VALIDATION.get(class_type, ())
    errors: list[dict[str, Any]] = []
    valid = True
    for name in [*definition.required, *definition.optional]:
        found = definition.input_spec(name)
        assert found is not None
        spec, category = found
        input_type = live.choices.get((class_type, name), spec[0])
        options: dict[str, Any] = spec[1] if len(spec) > 1 else {}
        if name not in inputs:
            if category == "required":
                errors.append(_error("required_input_missing", "Required input is missing", name, {"input_name": name}))
            continue
        value = inputs[name]
        config = list(spec)
        if isinstance(value, list):
            linked = _check_link(prompt, name, value, input_type, config, validated, upstream, live)
            if isinstance(linked, dict):
                errors.append(linked)
            elif linked is False:
                valid = False
            continue
        error = _check_value(inputs, name, value, input_type, options, config, checked=name not in custom)
        if error is not None:
            errors.append(error)
    for name in custom:
        # The loaders' VALIDATE_INPUTS (upstream nodes.py): the file must exist; reported after the loop.
        value = inputs.get(name)
        if isinstance(value, str) and not live.input_exists(value):
            errors.append(
                _error(
                    "custom_validation_failed",
                    "Custom validation failed for node",
                    f"{name} - Invalid image file: {value}",
                    {"input_name": name},
                )
            )
    result: Result = (False, errors, node_id) if errors or not valid else (True, [], node_id)
    validated[node_id] = result
    return result


def _check_link(
    prompt: dict[str, Any],
    name: str,
    value: list[Any],
    input_type: Any,
    config: list[Any],
    validated: dict[str, Result],
    upstream: bool,
    live: Live,
) -> dict[str, Any] | bool | None:
    """None: the link is good; False: the linked node is invalid; a dict: this input's own error."""
    if len(value) != 2:
        return _error(
            "bad_linked_input",
            "Bad linked input, must be a length-2 list of [node_id, slot_index]",
            name,
            {"input_name": name, "input_config": config, "received_value": value},
        )
    source_id = value[0]
    source_class = prompt[source_id]["class_type"]
    received_type = NODES[source_class].outputs[value[1]]
    if not _types_match(received_type, input_type):
        return _error(
            "return_type_mismatch",
            "Return type mismatch between linked nodes",
            f"{name}, received_type({received_type}) mismatch input_type({input_type})"
            if upstream
            else f"{name}, {received_type} != {input_type}",
            {
                "input_name": name,
                "input_config": config,
                "received_type": received_type,
                "linked_node": value,
            },
        )
    try:
        ok, _, _ = _validate_inputs(prompt, source_id, validated, upstream, live)
    except Exception as ex:
        reasons = [
            _error(
                "exception_during_inner_validation",
                "Exception when validating inner node",
                str(ex),
                {
                    "input_name": name,
                    "input_config": config,
                    "exception_message": str(ex),
                    "exception_type": type(ex).__name__,
                    "traceback": list(_UPSTREAM_LINK_TRACEBACK if upstream else _LINK_TRACEBACK),
                    "linked_node": value,
                },
            )
        ]
        validated[source_id] = (False, reasons, source_id)
        return False
    return None if ok else False


def _types_match(received: str, expected: Any) -> bool:
    if not isinstance(expected, str):
        return received == "COMBO"
    if received == "*" or expected == "*":
        return True
    return received in expected.split(",")


def _check_value(
    inputs: dict[str, Any],
    name: str,
    value: Any,
    input_type: Any,
    options: dict[str, Any],
    config: list[Any],
    *,
    checked: bool = True,
) -> dict[str, Any] | None:
    """Convert the value to its type; then, unless the node validates it itself (`checked=False`), check its
    range and choices."""
    converter = _CONVERTERS.get(input_type) if isinstance(input_type, str) else None
    if converter is not None:
        try:
            value = converter(value)
        except Exception as ex:
            return _error(
                "invalid_input_type",
                f"Failed to convert an input value to a {input_type} value",
                f"{name}, {value}, {ex}",
                {
                    "input_name": name,
                    "input_config": config,
                    "received_value": value,
                    "exception_message": str(ex),
                },
            )
        inputs[name] = value
    if not checked:
        return None
    if "min" in options and value < options["min"]:
        return _error(
            "value_smaller_than_min",
            f"Value {value} smaller than min of {options['min']}",
            name,
            {"input_name": name, "input_config": config, "received_value": value},
        )
    if "max" in options and value > options["max"]:
        return _error(
            "value_bigger_than_max",
            f"Value {value} bigger than max of {options['max']}",
            name,
            {"input_name": name, "input_config": config, "received_value": value},
        )
    if isinstance(input_type, list) and value not in input_type:
        listed = f"(list of length {len(input_type)})" if len(input_type) > 20 else str(input_type)
        return _error(
            "value_not_in_list",
            "Value not in list",
            f"{name}: '{value}' not in {listed}",
            {
                "input_name": name,
                "input_config": None if len(input_type) > 20 else config,
                "received_value": value,
            },
        )
    return None
