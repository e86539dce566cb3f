"""POST /mailings: a mailing started over HTTP, its records as JSON, as an uploaded file (a form), or a
directory segment. The request is parsed here; starting.py checks, stores and publishes it."""

import json
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from publipost_auth import Operator
from publipost_contracts import EInvoiceFormat, OutputFormat, Problem
from publipost_http import correlation_id
from publipost_http.errors import RETRY_AFTER_S
from publipost_records import UnreadableFile, records_kind
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from .context import Context
from .starting import InlineRecords, MailingStart, RecordsSource, RequestRefused, SegmentRecords, UploadedRecords
from .starting import start_mailing as start

router = APIRouter(prefix="/mailings", tags=["mailings"])
JSON, FORM = "application/json", "multipart/form-data"
_SPOOL_CHUNK = 1 << 20


class StartMailing(BaseModel):
    """A mailing to start: the fields of merge.requested. As JSON, the records are `records` or a `segment_id`;
    as a form, these same fields (custom_fields as a JSON object's text) and the records as the file `file`."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(
        default_factory=lambda: str(uuid.uuid4()),
        min_length=1,
        max_length=128,
        description="Idempotency key: a second request with it starts nothing and answers the same mailing. "
        "A new one when absent.",
    )
    template_id: str = Field(min_length=1, max_length=128)
    template_version: int | None = Field(default=None, ge=1, description="A version; the latest when absent.")
    name: str | None = Field(default=None, max_length=200, description="The template's name and the date when absent.")
    custom_fields: dict[str, str] = Field(default_factory=dict, description="Values of the template's custom fields.")
    output: OutputFormat = "pdf"
    format: EInvoiceFormat = Field(
        default="pdf",
        description="Invoice and credit note templates: how documents go by e-mail unless the recipient directory "
        "says otherwise: pdf, facturx (the Factur-X PDF) or ubl (the PDF and a UBL 2.1 XML).",
    )
    missing_fields: Literal["refuse", "render_empty"] = Field(
        default="refuse",
        description="Records lacking a field the template uses: refuse the request, or render those fields empty "
        "(the mailing lists them in its warnings).",
    )
    entity_type: str = Field(default="client", min_length=1, max_length=64)
    records: list[dict[str, Any]] | None = Field(default=None, description="The records, each with an `id` (JSON only).")
    segment_id: str | None = Field(
        default=None, min_length=1, max_length=128, description="A recipient-directory segment: its recipients."
    )

    def start(self) -> MailingStart:
        return MailingStart(**self.model_dump(exclude={"records", "segment_id"}))


class MailingStarted(BaseModel):
    request_id: str
    mailing_id: str = Field(description="Follow it on GET /mailings/{mailing_id} (404 until merge takes it).")


_FORM_SCHEMA = {
    "type": "object",
    "required": ["template_id", "file"],
    "properties": {
        **{name: {"type": "string"} for name in StartMailing.model_fields if name not in ("records", "custom_fields")},
        "custom_fields": {"type": "string", "description": 'A JSON object: {"signatory": "Jane Doe"}.'},
        "file": {"type": "string", "format": "binary", "description": "The records: .json, .ndjson, .csv or .xlsx."},
    },
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            JSON: {"schema": StartMailing.model_json_schema()},
            FORM: {"schema": _FORM_SCHEMA},
        },
    }
}


@router.post("", status_code=202, response_model=MailingStarted, openapi_extra=_BODY)
async def start_mailing(
    ctx: Context, caller: Operator, request: Request, correlation: Annotated[str, Depends(correlation_id)]
) -> MailingStarted:
    """Start a mailing: checked now as merge.requested would be (the template and segment must be the tenant's,
    each record needs an `id`, ...; an upload is streamed to storage record by record), then merge.requested is
    published and merge renders it as any other. Follow it on GET /mailings/{mailing_id}, which answers 404
    for the instant before merge takes the request. A request id seen before starts nothing."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    try:
        if media_type == JSON:
            body = _model(await _json(request))
            source: RecordsSource = _source(body, None)
            started = await start(ctx, caller.tenant_id, correlation, body.start(), source)
        elif media_type == FORM:
            async with request.form(max_files=1) as form:
                upload = form.get("file")
                fields = {name: value for name, value in form.multi_items() if name != "file"}
                body = _model(_form_fields(fields))
                async with _spooled(upload) as uploaded:
                    started = await start(ctx, caller.tenant_id, correlation, body.start(), _source(body, uploaded))
        else:
            raise _invalid(("header", "content-type"), f"send {JSON} or {FORM} (with the records as `file`)")
    except RequestRefused as refused:
        raise HTTPException(422, detail=[_detail(problem) for problem in refused.problems]) from refused
    except httpx.HTTPError as exc:  # the template service or the directory: nothing was started, try again
        service = exc.request.url.copy_with(path="/", query=None)
        message = f"{service} did not answer as expected ({type(exc).__name__}); nothing was started, try again shortly"
        raise HTTPException(503, detail=message, headers={"Retry-After": str(RETRY_AFTER_S)}) from exc
    return MailingStarted(request_id=started.request_id, mailing_id=started.mailing_id)


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise _invalid(("body",), f"not valid JSON{where}") from exc


def _form_fields(fields: dict[str, Any]) -> dict[str, Any]:
    if isinstance(fields.get("custom_fields"), str):
        try:
            fields["custom_fields"] = json.loads(fields["custom_fields"])
        except ValueError as exc:
            raise _invalid(("body", "custom_fields"), 'a JSON object of texts: {"signatory": "Jane Doe"}') from exc
    if "records" in fields:
        raise _invalid(("body", "records"), "in a form, the records are the file `file`")
    return fields


def _model(fields: Any) -> StartMailing:
    try:
        return StartMailing.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from exc


def _source(body: StartMailing, uploaded: UploadedRecords | None) -> RecordsSource:
    given = [name for name, there in (("records", body.records), ("segment_id", body.segment_id), ("file", uploaded))
             if there is not None]
    if len(given) != 1:
        which = " and ".join(given) if given else "none"
        raise _invalid(("body",), f"give exactly one of records, segment_id or file (a form's upload), not {which}")
    if body.records is not None:
        return InlineRecords(body.records)
    if body.segment_id is not None:
        return SegmentRecords(body.segment_id)
    assert uploaded is not None
    return uploaded


@asynccontextmanager
async def _spooled(upload: Any) -> AsyncIterator[UploadedRecords | None]:
    """The uploaded file in a temporary file named for its kind (openpyxl opens only files named like
    workbooks), removed after the request, copied a megabyte at a time from where the form parser put it."""
    if upload is None:
        yield None
        return
    if not isinstance(upload, UploadFile):
        raise _invalid(("body", "file"), "must be an uploaded file (a form's file field)")
    try:
        kind = records_kind(upload.filename)
    except UnreadableFile as exc:
        raise _invalid(("body", "file"), str(exc)) from exc
    with tempfile.TemporaryDirectory(prefix="merge-records-") as folder:
        path = Path(folder) / f"records.{kind}"
        await upload.seek(0)
        with path.open("wb") as spool:
            while chunk := await upload.read(_SPOOL_CHUNK):
                spool.write(chunk)
        yield UploadedRecords(path, kind)


def _detail(problem: Problem) -> dict[str, Any]:
    return {"loc": ["body", *problem.field.split(".")], "msg": problem.message, "type": "value_error"}


def _invalid(loc: tuple[str, ...], message: str) -> HTTPException:
    return HTTPException(422, detail=[{"loc": list(loc), "msg": message, "type": "value_error"}])
