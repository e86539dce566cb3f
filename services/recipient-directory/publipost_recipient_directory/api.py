"""HTTP API of the directory: recipients, imports and their sample files, the tenant's resolution order."""

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Query, Response, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from publipost_auth import Admin, Anyone, Operator, Reader
from publipost_http import content_disposition
from publipost_records import FileKind, kind_of
from pydantic import BaseModel

from .context import Context, DirectoryContext
from .domain import CUSTOMER_NUMBER, RecipientNotFound
from .importing import ImportRefused, import_file, sample_csv, sample_xlsx
from .models import ImportResult, RecipientIn, RecipientPage, RecipientView, ResolutionSettings
from .repository import search_query
from .sample_files import XLSX_CONTENT_TYPE

router = APIRouter(prefix="/recipients", tags=["recipients"])
settings_router = APIRouter(prefix="/settings", tags=["settings"])
CustomerNumber = Annotated[str, PathParam(pattern=CUSTOMER_NUMBER)]
_SPOOL_CHUNK = 1 << 20


class ImportProblem(BaseModel):
    line: int | None
    column: str | None
    column_number: int | None
    msg: str


class ImportRefusal(BaseModel):
    message: str
    error_count: int
    detail: list[ImportProblem]


def _check_document_type(ctx: DirectoryContext, body: RecipientIn) -> None:
    if body.document_type is not None and body.document_type not in ctx.settings.document_types:
        known = ", ".join(ctx.settings.document_types)
        message = f"unknown document type {body.document_type!r}; known types: {known}"
        raise HTTPException(422, detail=[{"loc": ["body", "document_type"], "msg": message, "type": "value_error"}])


@router.put("/{customer_number}", response_model=RecipientView)
async def put_recipient(
    ctx: Context, caller: Operator, customer_number: CustomerNumber, body: RecipientIn, response: Response
) -> RecipientView:
    """Create or replace the recipient of a customer number (201 when created)."""
    _check_document_type(ctx, body)
    recipient, created = await ctx.recipients.upsert(body.to_recipient(caller.tenant_id, customer_number))
    response.status_code = 201 if created else 200
    return RecipientView.from_recipient(recipient)


@router.get("/{customer_number}", response_model=RecipientView)
async def get_recipient(ctx: Context, caller: Reader, customer_number: CustomerNumber) -> RecipientView:
    recipient = await ctx.recipients.get(caller.tenant_id, customer_number)
    if recipient is None:
        raise RecipientNotFound(customer_number)
    return RecipientView.from_recipient(recipient)


@router.delete("/{customer_number}", status_code=204)
async def delete_recipient(ctx: Context, caller: Operator, customer_number: CustomerNumber) -> None:
    if not await ctx.recipients.delete(caller.tenant_id, customer_number):
        raise RecipientNotFound(customer_number)


@router.get("", response_model=RecipientPage)
async def search_recipients(
    ctx: Context,
    caller: Reader,
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
        caller.tenant_id,
        q,
        document_type=document_type,
        country=country.upper() if country else None,
        family=family,
        type=type,
        postal_code=postal_code,
        locality=locality,
    )
    recipients = await ctx.recipients.page(query, after=after, limit=limit)
    return RecipientPage(
        items=[RecipientView.from_recipient(r) for r in recipients],
        next_after=recipients[-1].customer_number if len(recipients) == limit else None,
    )


@asynccontextmanager
async def _spooled(upload: UploadFile, kind: FileKind, max_bytes: int) -> AsyncIterator[Path]:
    """The upload in a temporary file, read twice by the import and removed after it."""
    with tempfile.TemporaryDirectory(prefix="recipient-import-") as folder:
        path = Path(folder) / f"upload.{kind}"  # openpyxl opens only files named like workbooks
        size = 0
        with path.open("wb") as spool:
            while chunk := await upload.read(_SPOOL_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise HTTPException(413, detail=f"the file is over the {max_bytes}-byte limit")
                spool.write(chunk)
        yield path


@router.post(
    "/import",
    response_model=ImportResult,
    responses={422: {"model": ImportRefusal, "description": "The file was refused whole; every problem is listed."}},
)
async def import_recipients(
    ctx: Context,
    caller: Operator,
    file: Annotated[UploadFile, File(description="A .csv or .xlsx file laid out like the sample files.")],
) -> ImportResult | JSONResponse:
    """Check the whole file, then create or update its recipients; a file with any problem stores nothing."""
    kind = kind_of(file.filename)
    if kind is None:
        message = f"{file.filename!r} is neither a .csv nor an .xlsx file"
        raise HTTPException(422, detail=[{"loc": ["body", "file"], "msg": message, "type": "value_error"}])
    async with _spooled(file, kind, ctx.settings.max_import_bytes) as path:
        try:
            return await import_file(
                path,
                kind,
                tenant_id=caller.tenant_id,
                recipients=ctx.recipients,
                document_types=ctx.settings.document_types,
                batch_size=ctx.settings.import_batch_size,
                listed=ctx.settings.import_problems_listed,
                workbook_limits=ctx.settings.workbook_limits,
            )
        except ImportRefused as refused:
            listed = "" if len(refused.problems) == refused.count else f" (the first {len(refused.problems)} listed)"
            refusal = ImportRefusal(
                message=f"the file was not imported, nothing was stored: {refused.count} problems{listed}",
                error_count=refused.count,
                detail=[ImportProblem(**p.as_json()) for p in refused.problems],
            )
            return JSONResponse(refusal.model_dump(), status_code=422)


@router.get("/import/sample.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
async def download_sample_csv(ctx: Context, caller: Anyone) -> Response:
    """A CSV file to fill in: every column, with comments on the format."""
    return Response(
        sample_csv(ctx.settings.document_types),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": content_disposition("recipients-sample.csv")},
    )


@router.get("/import/sample.xlsx", response_class=Response, responses={200: {"content": {XLSX_CONTENT_TYPE: {}}}})
async def download_sample_xlsx(ctx: Context, caller: Anyone) -> Response:
    """An Excel workbook to fill in: every column, with comments on the format."""
    return Response(
        sample_xlsx(ctx.settings.document_types),
        media_type=XLSX_CONTENT_TYPE,
        headers={"Content-Disposition": content_disposition("recipients-sample.xlsx")},
    )


@settings_router.get("/resolution", response_model=ResolutionSettings)
async def get_resolution(ctx: Context, caller: Reader) -> ResolutionSettings:
    """The order in which rules look for a document's address (the default until the tenant sets one)."""
    return ResolutionSettings(order=await ctx.tenant_settings.resolution_order(caller.tenant_id))


@settings_router.put("/resolution", response_model=ResolutionSettings)
async def put_resolution(ctx: Context, caller: Admin, body: ResolutionSettings) -> ResolutionSettings:
    await ctx.tenant_settings.set_resolution_order(caller.tenant_id, body.order)
    return body
