from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response
from publipost_http import TenantId
from pydantic import BaseModel, Field, field_validator

from .context import Context
from .domain import is_valid_address, normalise_address

router = APIRouter(prefix="/recipients", tags=["recipients"])
CustomerNumber = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class RecipientIn(BaseModel):
    email: str | None = Field(default=None, max_length=254, description="Where documents go.")
    name: str | None = Field(default=None, max_length=200)
    cc: list[str] = Field(default_factory=list, max_length=20, description="Copied on every document.")

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not is_valid_address(value.strip()):
            raise ValueError(f"{value!r} is not a valid e-mail address")
        return normalise_address(value)

    @field_validator("cc")
    @classmethod
    def _cc(cls, values: list[str]) -> list[str]:
        bad = [v for v in values if not is_valid_address(v.strip())]
        if bad:
            raise ValueError(f"not valid e-mail addresses: {', '.join(map(repr, bad))}")
        return [normalise_address(v) for v in values]


class RecipientView(RecipientIn):
    customer_number: str
    created_at: datetime
    updated_at: datetime


class RecipientPage(BaseModel):
    items: list[RecipientView]
    next_after: str | None = Field(description="Pass as `after` for the next page; null on the last page.")


def _view(doc: dict[str, Any]) -> RecipientView:
    return RecipientView(**{k: doc.get(k) for k in RecipientView.model_fields if k in doc})


@router.put("/{customer_number}", response_model=RecipientView)
async def put_recipient(
    ctx: Context, tenant_id: TenantId, customer_number: CustomerNumber, body: RecipientIn, response: Response
) -> RecipientView:
    """Create or replace the recipient of a customer number (201 when created)."""
    doc, created = await ctx.recipients.upsert(tenant_id, customer_number, body.model_dump())
    response.status_code = 201 if created else 200
    return _view(doc)


@router.get("/{customer_number}", response_model=RecipientView)
async def get_recipient(ctx: Context, tenant_id: TenantId, customer_number: CustomerNumber) -> RecipientView:
    doc = await ctx.recipients.get(tenant_id, customer_number)
    if doc is None:
        raise HTTPException(404, detail=f"no recipient with customer number {customer_number!r}")
    return _view(doc)


@router.delete("/{customer_number}", status_code=204)
async def delete_recipient(ctx: Context, tenant_id: TenantId, customer_number: CustomerNumber) -> None:
    if not await ctx.recipients.delete(tenant_id, customer_number):
        raise HTTPException(404, detail=f"no recipient with customer number {customer_number!r}")


@router.get("", response_model=RecipientPage)
async def list_recipients(
    ctx: Context,
    tenant_id: TenantId,
    after: Annotated[str | None, Query(description="Last customer number of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> RecipientPage:
    docs = await ctx.recipients.page(tenant_id, after=after, limit=limit)
    return RecipientPage(
        items=[_view(d) for d in docs], next_after=docs[-1]["customer_number"] if len(docs) == limit else None
    )
