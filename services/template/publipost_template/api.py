"""DOCX templates over HTTP: upload, versions, fields, download. merge reads GET /templates/{id}."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Response, UploadFile
from fastapi.responses import StreamingResponse
from publipost_auth import Anyone, Operator, Reader
from publipost_contracts.events import TemplateType
from publipost_http import INT64_MAX, Paging, content_disposition, correlation_id
from publipost_storage import BlobNotFound
from pydantic import BaseModel, Field

from . import handlers
from .context import Context, TemplateContext
from .domain import (
    DOCX_CONTENT_TYPE,
    PREDEFINED_FIELDS,
    OptionChanges,
    TemplateNotFound,
    TemplateOptions,
    TemplateRejected,
    TemplateVersion,
)

router = APIRouter(prefix="/templates", tags=["templates"])


class TemplateView(BaseModel):
    """One version of a template: what merge renders (blob_id) and what it must be given."""

    id: str
    name: str
    version: int
    blob_id: str = Field(description="The DOCX merge renders with docxtpl.")
    fields: list[str] = Field(description="Every field the template uses.")
    predefined_fields: list[str] = Field(description="Fields filled from the record.")
    custom_fields: list[str] = Field(description="Fields whose values are given at generation time.")
    template_type: TemplateType
    auto_pdf: bool
    validation_required: bool
    entity_type: str
    created_at: datetime = Field(description="When this version was uploaded.")
    original_blob_id: str | None = Field(description="The upload as sent, when Word merge fields were converted.")
    field_mapping: dict[str, str] = Field(description="Word merge field name → template variable.")
    invoice_mapping: dict[str, str] = Field(
        default_factory=dict,
        description="Invoice and credit note templates: invoice field → record key path, over the defaults "
        "(docs/e-invoices.md).",
    )
    conversion_notes: list[str]
    filename: str


class TemplatePage(BaseModel):
    items: list[TemplateView]
    total: int
    page: int
    per_page: int


def _view(name: str, version: TemplateVersion) -> TemplateView:
    return TemplateView(
        id=version.template_id,
        name=name,
        version=version.version,
        blob_id=version.blob_id,
        fields=version.fields,
        predefined_fields=version.predefined_fields,
        custom_fields=version.custom_fields,
        template_type=version.template_type,
        auto_pdf=version.auto_pdf,
        validation_required=version.validation_required,
        entity_type=version.entity_type,
        created_at=version.created_at,
        original_blob_id=version.original_blob_id,
        field_mapping=dict(version.field_mapping),
        invoice_mapping=dict(version.invoice_mapping),
        conversion_notes=version.conversion_notes,
        filename=version.filename,
    )


def _rejected(exc: TemplateRejected) -> HTTPException:
    return HTTPException(422, detail=[problem.as_detail() for problem in exc.problems])


async def _upload(file: UploadFile, ctx: TemplateContext) -> handlers.Upload:
    # One byte over the limit is enough to refuse; the rest is never read into memory.
    data = await file.read(ctx.settings.max_template_bytes + 1)
    return handlers.Upload(data=data, filename=file.filename or "template.docx")


@router.post("", status_code=201, response_model=TemplateView)
async def upload_template(
    ctx: Context,
    caller: Operator,
    correlation: Annotated[str, Depends(correlation_id)],
    file: Annotated[UploadFile, File(description="The DOCX template (Jinja placeholders or Word merge fields).")],
    name: Annotated[str, Form(min_length=1, max_length=200)],
    custom_fields: Annotated[str, Form(max_length=4000, description="Comma separated: asked at generation.")] = "",
    template_type: Annotated[TemplateType, Form()] = "standard",
    auto_pdf: Annotated[bool, Form()] = True,
    validation_required: Annotated[bool, Form()] = False,
    entity_type: Annotated[str, Form(max_length=64)] = "client",
    invoice_mapping: Annotated[
        str, Form(max_length=8000, description="Invoice and credit note templates: a JSON object.")
    ] = "",
) -> TemplateView:
    options = TemplateOptions(template_type, auto_pdf, validation_required, entity_type, custom_fields, invoice_mapping)
    try:
        version = await handlers.register_template(
            ctx,
            tenant_id=caller.tenant_id,
            correlation_id=correlation,
            name=name,
            upload=await _upload(file, ctx),
            options=options,
        )
    except TemplateRejected as exc:
        raise _rejected(exc) from exc
    return _view(name, version)


@router.get("", response_model=TemplatePage)
async def list_templates(ctx: Context, caller: Reader, paging: Paging) -> TemplatePage:
    """The tenant's templates at their latest version, most recently uploaded first."""
    templates, total = await ctx.templates.page(caller.tenant_id, skip=paging.skip, limit=paging.per_page)
    latest = await ctx.versions.latest_of(caller.tenant_id, [t.id for t in templates])
    items = [_view(t.name, latest[t.id]) for t in templates if t.id in latest]
    return TemplatePage(items=items, total=total, page=paging.page, per_page=paging.per_page)


@router.get("/predefined-fields")
async def predefined_fields(caller: Anyone) -> dict[str, list[str]]:
    """Per entity type, the fields a record brings: a template may use them without declaring them."""
    return {entity_type: list(names) for entity_type, names in PREDEFINED_FIELDS.items()}


VersionQuery = Annotated[int | None, Query(ge=1, le=INT64_MAX, description="A version; the latest when absent.")]


async def _version(ctx: TemplateContext, tenant_id: str, template_id: str, version: int | None) -> TemplateView:
    template = await ctx.templates.get(tenant_id, template_id)
    stored = await ctx.versions.get(tenant_id, template_id, version) if template is not None else None
    if template is None or stored is None:
        raise TemplateNotFound(template_id, version if template else None)
    return _view(template.name, stored)


@router.get("/{template_id}", response_model=TemplateView)
async def get_template(ctx: Context, caller: Reader, template_id: str, version: VersionQuery = None) -> TemplateView:
    return await _version(ctx, caller.tenant_id, template_id, version)


@router.get("/{template_id}/versions", response_model=list[TemplateView])
async def list_versions(ctx: Context, caller: Reader, template_id: str) -> list[TemplateView]:
    """Every version, newest first."""
    template = await ctx.templates.get(caller.tenant_id, template_id)
    if template is None:
        raise TemplateNotFound(template_id)
    return [_view(template.name, v) for v in await ctx.versions.all_of(caller.tenant_id, template_id)]


@router.post("/{template_id}/versions", status_code=201, response_model=TemplateView)
async def add_version(
    ctx: Context,
    caller: Operator,
    correlation: Annotated[str, Depends(correlation_id)],
    template_id: str,
    file: Annotated[UploadFile, File(description="The new DOCX.")],
    custom_fields: Annotated[str | None, Form(max_length=4000)] = None,
    template_type: Annotated[TemplateType | None, Form()] = None,
    auto_pdf: Annotated[bool | None, Form()] = None,
    validation_required: Annotated[bool | None, Form()] = None,
    entity_type: Annotated[str | None, Form(max_length=64)] = None,
    invoice_mapping: Annotated[str | None, Form(max_length=8000)] = None,
) -> TemplateView:
    """A new version; each option left out keeps the latest version's value. 409 when other versions kept
    being added at the same time."""
    changes = OptionChanges(
        template_type=template_type,
        auto_pdf=auto_pdf,
        validation_required=validation_required,
        entity_type=entity_type,
        custom_fields=custom_fields,
        invoice_mapping=invoice_mapping,
    )
    try:
        version = await handlers.add_version(
            ctx,
            tenant_id=caller.tenant_id,
            correlation_id=correlation,
            template_id=template_id,
            upload=await _upload(file, ctx),
            changes=changes,
        )
    except TemplateRejected as exc:
        raise _rejected(exc) from exc
    return await _version(ctx, caller.tenant_id, template_id, version.version)


@router.delete("/{template_id}", status_code=204)
async def delete_template(ctx: Context, caller: Operator, template_id: str) -> Response:
    """The template, all its versions and their files."""
    await handlers.delete_template(ctx, tenant_id=caller.tenant_id, template_id=template_id)  # 404 if unknown
    return Response(status_code=204)


@router.get("/{template_id}/content")
async def download_template(
    ctx: Context, caller: Reader, template_id: str, version: VersionQuery = None
) -> StreamingResponse:
    """The DOCX merge renders (Word merge fields already converted)."""
    view = await _version(ctx, caller.tenant_id, template_id, version)
    return await _download(ctx, caller.tenant_id, view.blob_id, f"{view.name}.docx")


@router.get("/{template_id}/original")
async def download_original(
    ctx: Context, caller: Reader, template_id: str, version: VersionQuery = None
) -> StreamingResponse:
    """The file as uploaded: differs from /content when Word merge fields were converted."""
    view = await _version(ctx, caller.tenant_id, template_id, version)
    return await _download(ctx, caller.tenant_id, view.original_blob_id or view.blob_id, view.filename)


async def _download(ctx: TemplateContext, tenant_id: str, blob_id: str, filename: str) -> StreamingResponse:
    try:
        info = await ctx.storage.blobs.info(blob_id, tenant_id=tenant_id)
    except BlobNotFound as exc:
        raise HTTPException(404, detail=f"the file of this template is missing ({blob_id})") from exc
    return StreamingResponse(
        ctx.storage.blobs.stream(blob_id, tenant_id=tenant_id),
        media_type=DOCX_CONTENT_TYPE,
        headers={
            "Content-Disposition": content_disposition(filename, fallback="template.docx"),
            "Content-Length": str(info["length"]),
        },
    )
