"""Templates in the schema: their typed parameters (what a form and a typed client need), and the
admins' mutations that turn a ComfyUI workflow into a template at run time.

`proposeTemplate` reads a workflow (API or UI format), proposes parameters and lists what the live
catalogue finds wrong; `saveTemplate` checks and saves it as the template's new version, seen by
every API process at once (jobs/templates.py). Generations keep the version they were created with.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from comfy.template_upload import propose_template, template_from_upload
from comfy.templates import FieldError as TemplateFieldError
from comfy.templates import ParamValidationError
from db.templates import TemplateNameTaken
from graph.context import Context
from graph.results import FieldError, NotAllowedError, ValidationError, api_field_name
from jobs.templates import RuntimeTemplate

__all__ = [
    "CatalogKind",
    "ParamType",
    "Template",
    "TemplateMutation",
    "TemplateParam",
    "TemplateSource",
]

_ADMINS_ONLY = "templates are added and changed by admins"


@strawberry.enum
class ParamType(enum.Enum):
    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOLEAN = "boolean"
    ENUM = "enum"
    SEED = "seed"
    LORAS = "loras"
    IMAGE = "image"
    MASK = "mask"


@strawberry.enum
class CatalogKind(enum.Enum):
    CHECKPOINTS = "checkpoints"
    LORAS = "loras"
    SAMPLERS = "samplers"
    SCHEDULERS = "schedulers"


@strawberry.enum(description="Where a template comes from: shipped with Safelight, an operator's directory, an admin.")
class TemplateSource(enum.Enum):
    SHIPPED = "shipped"
    DIRECTORY = "directory"
    UPLOADED = "uploaded"


@strawberry.enum(description="The format of an uploaded workflow: ComfyUI's 'Export (API)' or the editor's save.")
class WorkflowFormat(enum.Enum):
    API = "api"
    UI = "ui"


@strawberry.type(description="One typed parameter of a template: the form and the validation both use it.")
class TemplateParam:
    name: str = strawberry.field(description="The GenerationInput field this parameter is set by.")
    type: ParamType = strawberry.field(description="IMAGE and MASK take the id of an uploaded input (POST /inputs).")
    description: str
    required: bool
    default: JSON | None
    min: float | None
    max: float | None
    multiple_of: int | None
    max_length: int | None
    max_items: int | None
    choices: list[str] | None
    catalog: CatalogKind | None = strawberry.field(description="Choices come from this catalogue list.")
    multiline: bool = strawberry.field(description="A STRING shown as a text area (a display hint).")


@strawberry.type
class Template:
    name: str
    title: str
    description: str
    params: list[TemplateParam]
    version: int = strawberry.field(description="The current version; each save makes a new one.")
    source: TemplateSource
    updated_at: datetime | None

    @classmethod
    def from_runtime(cls, runtime: RuntimeTemplate) -> Template:
        spec = runtime.template
        return cls(
            name=spec.name,
            title=spec.title,
            description=spec.description,
            version=runtime.version,
            source=TemplateSource(runtime.source),
            updated_at=runtime.updated_at,
            params=[
                TemplateParam(
                    name=api_field_name(p.name),
                    type=ParamType(p.type),
                    description=p.description,
                    required=p.required,
                    default=p.default if p.has_default else None,
                    min=p.min,
                    max=p.max,
                    multiple_of=p.multiple_of,
                    max_length=p.max_length,
                    max_items=p.max_items,
                    choices=list(p.choices) if p.choices is not None else None,
                    catalog=CatalogKind(p.catalog) if p.catalog else None,
                    multiline=p.multiline,
                )
                for p in spec.params
            ],
        )


@strawberry.type(description="A workflow read as a template would be, for an admin to accept or edit.")
class TemplateProposal:
    format: WorkflowFormat
    workflow: JSON = strawberry.field(description="The workflow in API format (converted when UI format was sent).")
    params: JSON = strawberry.field(description="Proposed parameter declarations, in *.params.json form.")
    problems: list[FieldError] = strawberry.field(
        description="What the live catalogue finds wrong (workflow.<node>.inputs.<input>); empty when it fits."
    )


@strawberry.type
class TemplatePayload:
    template: Template
    created: bool = strawberry.field(description="False when the template already had this content.")


@strawberry.type(description="The name belongs to a shipped or directory template.")
class TemplateNameTakenError:
    message: str
    name: str


@strawberry.input
class TemplateInput:
    name: str
    workflow: JSON = strawberry.field(description="API format or the editor's UI format.")
    title: str | None = None
    description: str | None = None
    params: JSON | None = strawberry.field(
        default=None, description="Parameter declarations (*.params.json form); omitted: the proposal as it is."
    )


ProposeTemplateResult = Annotated[
    TemplateProposal | ValidationError | NotAllowedError, strawberry.union("ProposeTemplateResult")
]
SaveTemplateResult = Annotated[
    TemplatePayload | ValidationError | NotAllowedError | TemplateNameTakenError,
    strawberry.union("SaveTemplateResult"),
]


def _invalid(errors: tuple[TemplateFieldError, ...], message: str) -> ValidationError:
    return ValidationError(message=message, errors=[FieldError(field=e.field, message=e.message) for e in errors])


async def _object_info(info: strawberry.Info[Context, None]) -> dict[str, Any] | None:
    catalog = await info.context.state.catalogs.get()
    return dict(catalog.object_info) if catalog is not None and catalog.object_info else None


@strawberry.type
class TemplateMutation:
    @strawberry.mutation(description="Read a ComfyUI workflow and propose a template's parameters (admins).")
    async def propose_template(self, info: strawberry.Info[Context, None], workflow: JSON) -> ProposeTemplateResult:
        viewer = info.context.viewer_row
        if viewer is None or not viewer.is_admin:
            return NotAllowedError(message=_ADMINS_ONLY)
        try:
            proposal = propose_template(workflow, await _object_info(info))
        except ParamValidationError as exc:
            return _invalid(exc.errors, "not a workflow Safelight can read")
        return TemplateProposal(
            format=WorkflowFormat(proposal.format),
            workflow=JSON(proposal.workflow),
            params=JSON(proposal.params),
            problems=[FieldError(field=p.field, message=p.message) for p in proposal.problems],
        )

    @strawberry.mutation(description="Save a workflow as a template's new version, live at once (admins).")
    async def save_template(self, info: strawberry.Info[Context, None], input: TemplateInput) -> SaveTemplateResult:
        viewer = info.context.viewer_row
        if viewer is None or not viewer.is_admin:
            return NotAllowedError(message=_ADMINS_ONLY)
        object_info = await _object_info(info)
        if object_info is None:
            return ValidationError(
                message="no ComfyUI backend is reachable to check the workflow against",
                errors=[FieldError(field="workflow", message="cannot be checked: no backend answered")],
            )
        try:
            template, source_format = template_from_upload(
                name=input.name,
                title=input.title,
                description=input.description,
                doc=input.workflow,
                params=input.params,
                object_info=object_info,
            )
        except ParamValidationError as exc:
            return _invalid(exc.errors, "the workflow does not make a valid template")
        try:
            saved, created = await info.context.state.templates.save(
                template=template, source_format=source_format, created_by=viewer.id
            )
        except TemplateNameTaken as exc:
            return TemplateNameTakenError(message=str(exc), name=exc.name)
        return TemplatePayload(template=Template.from_runtime(saved), created=created)
