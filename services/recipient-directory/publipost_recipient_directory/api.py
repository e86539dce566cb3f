"""HTTP API of the directory: recipients and the tenant's resolution order."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi import Path as PathParam
from publipost_http import TenantId

from .context import Context, DirectoryContext
from .domain import CUSTOMER_NUMBER
from .models import RecipientIn, RecipientPage, RecipientView, ResolutionSettings
from .repository import search_query

router = APIRouter(prefix="/recipients", tags=["recipients"])
settings_router = APIRouter(prefix="/settings", tags=["settings"])
CustomerNumber = Annotated[str, PathParam(pattern=CUSTOMER_NUMBER)]


def _check_document_type(ctx: DirectoryContext, body: RecipientIn) -> None:
    if body.document_type is not None and body.document_type not in ctx.settings.document_types:
        known = ", ".join(ctx.settings.document_types)
        message = f"unknown document type {body.document_type!r}; known types: {known}"
        raise HTTPException(422, detail=[{"loc": ["body", "document_type"], "msg": message, "type": "value_error"}])


@router.put("/{customer_number}", response_model=RecipientView)
async def put_recipient(
    ctx: Context, tenant_id: TenantId, customer_number: CustomerNumber, body: RecipientIn, response: Response
) -> RecipientView:
    """Create or replace the recipient of a customer number (201 when created)."""
    _check_document_type(ctx, body)
    doc, created = await ctx.recipients.upsert(tenant_id, customer_number, body.to_document())
    response.status_code = 201 if created else 200
    return RecipientView.from_document(doc)


@router.get("/{customer_number}", response_model=RecipientView)
async def get_recipient(ctx: Context, tenant_id: TenantId, customer_number: CustomerNumber) -> RecipientView:
    doc = await ctx.recipients.get(tenant_id, customer_number)
    if doc is None:
        raise HTTPException(404, detail=f"no recipient with customer number {customer_number!r}")
    return RecipientView.from_document(doc)


@router.delete("/{customer_number}", status_code=204)
async def delete_recipient(ctx: Context, tenant_id: TenantId, customer_number: CustomerNumber) -> None:
    if not await ctx.recipients.delete(tenant_id, customer_number):
        raise HTTPException(404, detail=f"no recipient with customer number {customer_number!r}")


@router.get("", response_model=RecipientPage)
async def search_recipients(
    ctx: Context,
    tenant_id: TenantId,
    q: Annotated[
        str | None, Query(max_length=200, description="Start of a customer number, or part of a name or e-mail.")
    ] = None,
    document_type: str | None = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Za-z]{2}$")] = None,
    family: str | None = None,
    type: str | None = None,
    postal_code: str | None = None,
    locality: str | None = None,
    after: Annotated[str | None, Query(description="Last customer number of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> RecipientPage:
    """Recipients in customer-number order, one page at a time; every given criterion must match."""
    query = search_query(
        tenant_id,
        q,
        document_type=document_type,
        country=country.upper() if country else None,
        family=family,
        type=type,
        postal_code=postal_code,
        locality=locality,
    )
    docs = await ctx.recipients.page(query, after=after, limit=limit)
    return RecipientPage(
        items=[RecipientView.from_document(d) for d in docs],
        next_after=docs[-1]["customer_number"] if len(docs) == limit else None,
    )


@settings_router.get("/resolution", response_model=ResolutionSettings)
async def get_resolution(ctx: Context, tenant_id: TenantId) -> ResolutionSettings:
    """The order in which rules look for a document's address (the default until the tenant sets one)."""
    return ResolutionSettings(order=await ctx.tenant_settings.resolution_order(tenant_id))


@settings_router.put("/resolution", response_model=ResolutionSettings)
async def put_resolution(ctx: Context, tenant_id: TenantId, body: ResolutionSettings) -> ResolutionSettings:
    await ctx.tenant_settings.set_resolution_order(tenant_id, body.order)
    return body
