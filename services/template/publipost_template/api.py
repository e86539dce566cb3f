import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile
from fastapi.responses import StreamingResponse
from publipost_contracts import TemplateRegistered
from publipost_http import Paging, TenantId, correlation_id
from pydantic import BaseModel

from .context import Context, TemplateContext
from .domain import DOCX_CONTENT_TYPE, TemplateRejected, inspect_template

router = APIRouter(prefix="/templates", tags=["templates"])


class TemplateView(BaseModel):
    id: str
    name: str
    version: int
    blob_id: str
    fields: list[str]
    created_at: datetime


def _view(doc: dict[str, Any]) -> TemplateView:
    return TemplateView(id=doc["_id"], **{k: doc[k] for k in ("name", "version", "blob_id", "fields", "created_at")})


@router.post("", status_code=201, response_model=TemplateView)
async def upload_template(
    ctx: Context,
    tenant_id: TenantId,
    correlation: Annotated[str, Depends(correlation_id)],
    file: Annotated[UploadFile, File(description="The DOCX template.")],
    name: Annotated[str, Form(min_length=1, max_length=200)],
) -> TemplateView:
    data = await file.read(ctx.settings.max_template_bytes + 1)
    try:
        info = inspect_template(data, max_bytes=ctx.settings.max_template_bytes)
    except TemplateRejected as exc:
        raise HTTPException(422, detail=[{"loc": ["body", exc.field], "msg": exc.message}]) from exc
    template_id = str(uuid.uuid4())
    blob_id = await ctx.storage.blobs.put(
        data, f"{name}.docx", DOCX_CONTENT_TYPE, tenant_id=tenant_id, template_id=template_id
    )
    doc = {
        "_id": template_id,
        "tenant_id": tenant_id,
        "name": name,
        "version": 1,
        "blob_id": blob_id,
        "fields": info.fields,
        "created_at": datetime.now(UTC),
    }
    await ctx.templates.add(doc)
    await ctx.bus.publish(
        TemplateRegistered(
            tenant_id=tenant_id,
            correlation_id=correlation,
            template_id=template_id,
            name=name,
            version=1,
            fields=info.fields,
        )
    )
    return _view(doc)


@router.get("", response_model=list[TemplateView])
async def list_templates(
    ctx: Context,
    tenant_id: TenantId,
    paging: Paging,
) -> list[TemplateView]:
    docs = await ctx.templates.list(tenant_id, skip=paging.skip, limit=paging.per_page)
    return [_view(d) for d in docs]


async def _get(ctx: TemplateContext, tenant_id: str, template_id: str) -> dict[str, Any]:
    doc = await ctx.templates.get(tenant_id, template_id)
    if doc is None:
        raise HTTPException(404, detail=f"no template {template_id!r} for this tenant")
    return doc


@router.get("/{template_id}", response_model=TemplateView)
async def get_template(ctx: Context, tenant_id: TenantId, template_id: str) -> TemplateView:
    return _view(await _get(ctx, tenant_id, template_id))


@router.get("/{template_id}/content")
async def download_template(ctx: Context, tenant_id: TenantId, template_id: str) -> StreamingResponse:
    doc = await _get(ctx, tenant_id, template_id)
    return StreamingResponse(
        ctx.storage.blobs.stream(doc["blob_id"]),
        media_type=DOCX_CONTENT_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{doc["name"]}.docx"'},
    )
