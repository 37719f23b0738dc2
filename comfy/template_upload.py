"""An admin's workflow file made a template: read (API or UI format), parameters proposed, checked.

Pure, like the rest of comfy/: the live catalogue comes in as the backends' raw `/object_info`
(None when no backend answered). A UI-format workflow (the editor's normal save) needs it to
convert, since its widget values carry no input names; an API-format one ("Export (API)") can be
saved without it, unchecked, which the CLI says when it does so.

Every refusal is a ParamValidationError whose FieldErrors name the part: `name`, `title`,
`workflow`, `workflow.<node>.inputs.<input>` (as the raw-workflow check names them), `params`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from comfy.proposals import propose_params
from comfy.templates import (
    RAW_TEMPLATE,
    FieldError,
    ParamValidationError,
    Template,
    check_template,
    template_from_parts,
)
from comfy.ui_workflow import UiWorkflowError, is_ui_workflow, to_api_workflow

__all__ = ["MAX_PARAMS", "MAX_WORKFLOW_NODES", "Proposal", "propose_template", "read_workflow", "template_from_upload"]

MAX_WORKFLOW_NODES: Final = 500
MAX_PARAMS: Final = 100
MAX_TITLE: Final = 200
MAX_DESCRIPTION: Final = 2000
# Template names appear in URLs, file names of downloads and the CLI: plain characters only.
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True, slots=True)
class Proposal:
    format: str  # 'api' | 'ui': what the admin uploaded
    workflow: dict[str, Any]  # API format
    params: list[dict[str, Any]]  # *.params.json form
    problems: list[FieldError]  # what the live catalogue finds wrong with the workflow (empty: none)


def read_workflow(doc: Any, object_info: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """`(format, API-format workflow)` of an uploaded document, shape-checked and bounded."""
    if is_ui_workflow(doc):
        if not object_info:
            message = "a UI-format workflow is converted with a backend's /object_info, and no backend answered"
            raise ParamValidationError([FieldError("workflow", message)])
        try:
            return "ui", to_api_workflow(doc, object_info)
        except UiWorkflowError as exc:
            raise ParamValidationError([FieldError("workflow", str(exc))]) from None
    if not isinstance(doc, Mapping) or not doc:
        message = "must be a ComfyUI workflow: an object of nodes (API format) or the editor's save (UI format)"
        raise ParamValidationError([FieldError("workflow", message)])
    if len(doc) > MAX_WORKFLOW_NODES:
        raise ParamValidationError([FieldError("workflow", f"at most {MAX_WORKFLOW_NODES} nodes")])
    errors: list[FieldError] = []
    for node_id, node in doc.items():
        where = f"workflow.{node_id}"
        if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
            errors.append(FieldError(f"{where}.class_type", "is required (is this the API format?)"))
        elif not isinstance(node.get("inputs"), Mapping):
            errors.append(FieldError(f"{where}.inputs", "must be an object"))
    if errors:
        raise ParamValidationError(errors)
    return "api", {str(k): v for k, v in doc.items()}


def propose_template(doc: Any, object_info: Mapping[str, Any] | None) -> Proposal:
    """The workflow in API format with the parameters Safelight proposes and the catalogue's problems."""
    source_format, workflow = read_workflow(doc, object_info)
    params = propose_params(workflow, object_info or {})
    problems: list[FieldError] = []
    if object_info:
        template = _template("proposal", "", "", workflow, params)
        problems = check_template(template, object_info)
    return Proposal(source_format, workflow, params, problems)


def template_from_upload(
    *,
    name: str,
    title: str | None,
    description: str | None,
    doc: Any,
    params: Any,
    object_info: Mapping[str, Any] | None,
) -> tuple[Template, str]:
    """`(template, source format)`; `params` None takes the proposal as it is.

    With `object_info` the workflow is held to the live catalogue (every class, input, link and
    value a parameter does not set); without it only its shape and the parameters are checked.
    """
    errors: list[FieldError] = []
    if not _NAME.fullmatch(name) or name == RAW_TEMPLATE:
        errors.append(FieldError("name", "must be 1 to 100 letters, digits, '_', '.' or '-' (and not 'raw')"))
    if title is not None and len(title) > MAX_TITLE:
        errors.append(FieldError("title", f"at most {MAX_TITLE} characters"))
    if description is not None and len(description) > MAX_DESCRIPTION:
        errors.append(FieldError("description", f"at most {MAX_DESCRIPTION} characters"))
    if params is not None and (not isinstance(params, list) or len(params) > MAX_PARAMS):
        errors.append(FieldError("params", f"must be a list of at most {MAX_PARAMS} parameter declarations"))
    if errors:
        raise ParamValidationError(errors)
    source_format, workflow = read_workflow(doc, object_info)
    if params is None:
        params = propose_params(workflow, object_info or {})
    template = _template(name, title or name, description or "", workflow, params)
    if object_info:
        problems = check_template(template, object_info)
        if problems:
            raise ParamValidationError(problems)
    return template, source_format


def _template(name: str, title: str, description: str, workflow: dict[str, Any], params: Any) -> Template:
    try:
        return template_from_parts(name=name, title=title, description=description, workflow=workflow, params=params)
    except ValueError as exc:
        raise ParamValidationError([FieldError("params", str(exc))]) from None
