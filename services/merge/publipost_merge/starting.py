"""Starting a mailing over HTTP (POST /mailings): the request is checked as merge.requested is, against the
template its caller's tenant has; its records (given inline, uploaded as a file, or a directory segment's
recipients) are checked one at a time as they are stored; then merge.requested is published, and merge takes
it as any other. A refusal leaves nothing stored; a request id seen before starts nothing (unless merge
refused it: then it is asked again, as on the bus)."""

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from publipost_contracts import EInvoiceFormat, MergeRequested, OutputFormat, Problem
from publipost_records import Record, RecordsKind, UnreadableFile, WorkbookLimits, read_records
from publipost_refusals import Invalid, NotFound
from publipost_storage.blobs import NDJSON

from .clients import TemplateRef
from .context import MergeContext
from .domain import MailingRequest, mailing_id_for
from .request_checks import (
    Findings,
    MissingFields,
    fields_records_need,
    header_text_problem,
    missing_custom_fields,
    record_problems,
)

READ_BATCH = 500  # records read from a file per trip to the worker thread
LIMITS = WorkbookLimits(what="a records file", setting_prefix=None)


@dataclass(frozen=True)
class MailingStart:
    """What POST /mailings asks, whichever way its records come."""

    request_id: str
    template_id: str
    template_version: int | None
    name: str | None
    custom_fields: dict[str, str]
    output: OutputFormat
    missing_fields: MissingFields
    entity_type: str
    format: EInvoiceFormat = "pdf"


@dataclass(frozen=True)
class InlineRecords:
    records: list[dict[str, Any]]


@dataclass(frozen=True)
class UploadedRecords:
    path: Path  # the upload, spooled to a temporary file
    kind: RecordsKind


@dataclass(frozen=True)
class SegmentRecords:
    segment_id: str


RecordsSource = InlineRecords | UploadedRecords | SegmentRecords


@dataclass(frozen=True)
class Started:
    request_id: str
    mailing_id: str


class TemplateNotFound(NotFound):
    pass


class RequestRefused(Invalid):
    """The request would be refused by merge: every problem, each naming its field (and record or line)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


async def start_mailing(
    ctx: MergeContext, tenant_id: str, correlation_id: str, start: MailingStart, source: RecordsSource
) -> Started:
    started = Started(start.request_id, mailing_id_for(tenant_id, start.request_id))
    if await ctx.mailings.get(started.mailing_id):
        return started
    if (earlier := await ctx.requests.get(started.mailing_id)) is not None:
        if earlier.refusal is None:
            return started  # merge has it, or is about to
        await ctx.requests.delete(earlier.id)  # refused by merge: the same id, corrected, is asked again
    template = await ctx.templates.get(tenant_id, start.template_id, start.template_version)
    if template is None:
        which = f"version {start.template_version} of template" if start.template_version else "template"
        raise TemplateNotFound(f"template_id: no {which} {start.template_id!r} for this tenant")
    findings = _check_request(start, template)
    checked = _Checked(
        findings, fields_records_need(template.fields, template.custom_fields), start.missing_fields, _field_of(source)
    )
    records_file_id = None
    try:
        inline, records_file_id = await _store_records(ctx, tenant_id, started.mailing_id, source, checked)
        if findings.records == 0:
            findings.problem(Problem(field="records", message="no records: nothing to merge"))
        if findings.problems:
            raise RequestRefused(findings.refusal())
        request = MailingRequest(
            id=started.mailing_id,
            tenant_id=tenant_id,
            request_id=start.request_id,
            records_file_id=records_file_id,
            requested_at=datetime.now(UTC),
        )
        if not await ctx.requests.claim(request):
            await _delete(ctx, records_file_id)  # the same request id came twice at once: the first one goes on
            return started
        try:
            await ctx.bus.publish(_merge_requested(tenant_id, correlation_id, start, template, inline, records_file_id))
        except BaseException:
            await ctx.requests.delete(request.id)
            raise
    except BaseException:
        await _delete(ctx, records_file_id)
        raise
    return started


def _check_request(start: MailingStart, template: TemplateRef) -> Findings:
    findings = Findings()
    if missing := missing_custom_fields(template.custom_fields, start.custom_fields):
        message = f"no value for the template's custom fields: {', '.join(missing)}"
        findings.problem(Problem(field="custom_fields", message=message))
    if start.name is not None and (problem := header_text_problem("name", start.name)) is not None:
        findings.problem(problem)
    return findings


def _field_of(source: RecordsSource) -> str:
    """The request's field a problem with a record is told under."""
    return {InlineRecords: "records", UploadedRecords: "file", SegmentRecords: "segment_id"}[type(source)]


@dataclass(frozen=True)
class _Checked:
    """Checks each record as it goes by; a problem is told under the field the records came in, where the
    record is: records[3].id, or file with "line 4: ..." (the warnings are merge's to list, on the mailing)."""

    findings: Findings
    needed: frozenset[str]
    missing_fields: MissingFields
    field: str

    def line(self, index: int, record: dict[str, Any], place: str | None) -> bytes:
        """The record checked, as an NDJSON line."""
        self.findings.records += 1
        for problem in record_problems(index, record, self.needed, self.missing_fields)[0]:
            if place is None:
                self.findings.problem(problem.model_copy(update={"field": problem.field.replace("[]", f"[{index}]")}))
            else:
                self.findings.problem(Problem(field=self.field, message=f"{place}: {problem.message}", record_index=index))
        return json.dumps(record, ensure_ascii=False).encode() + b"\n"


async def _store_records(
    ctx: MergeContext, tenant_id: str, mailing_id: str, source: RecordsSource, checked: _Checked
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The records inline (a short list) or the id of the NDJSON file they were stored in, checked on the way."""
    if isinstance(source, InlineRecords):
        lines = [checked.line(index, record, None) for index, record in enumerate(source.records)]
        if sum(len(line) for line in lines) <= ctx.settings.inline_records_bytes:
            return source.records, None
        pieces = _each(lines)
    elif isinstance(source, UploadedRecords):
        pieces = _checked_lines(_read_file(source.path, source.kind), checked)
    else:
        pieces = _checked_lines(_segment(ctx, tenant_id, source.segment_id), checked)
    metadata = {"tenant_id": tenant_id, "mailing_id": mailing_id}
    try:
        return None, await ctx.storage.blobs.put_stream(pieces, f"{mailing_id}.records.ndjson", NDJSON, **metadata)
    except UnreadableFile as exc:  # the file written so far is gone with it (put_stream)
        place = f"{exc.place}: " if exc.place else ""
        raise RequestRefused([Problem(field="file", message=f"{place}{exc}")]) from exc


async def _each(lines: list[bytes]) -> AsyncIterator[bytes]:
    for line in lines:
        yield line


async def _checked_lines(records: AsyncIterator[Record], checked: _Checked) -> AsyncIterator[bytes]:
    index = 0
    async for record in records:
        yield checked.line(index, record.data, record.place)
        index += 1


async def _read_file(path: Path, kind: RecordsKind) -> AsyncIterator[Record]:
    """The file's records, read in a worker thread a batch at a time: the service answers meanwhile."""
    records = read_records(path, kind, LIMITS)
    while batch := await asyncio.to_thread(_take, records, READ_BATCH):
        for record in batch:
            yield record


def _take(records: Iterator[Record], count: int) -> list[Record]:
    return list(itertools.islice(records, count))


async def _segment(ctx: MergeContext, tenant_id: str, segment_id: str) -> AsyncIterator[Record]:
    number = 0
    async for line in ctx.directory.segment_records(tenant_id, segment_id):
        number += 1
        yield Record(f"segment recipient {number}", json.loads(line))


def _merge_requested(
    tenant_id: str,
    correlation_id: str,
    start: MailingStart,
    template: TemplateRef,
    inline: list[dict[str, Any]] | None,
    records_file_id: str | None,
) -> MergeRequested:
    return MergeRequested(
        tenant_id=tenant_id,
        correlation_id=correlation_id,
        request_id=start.request_id,
        template_id=template.template_id,
        template_version=template.version,  # the version checked here is the one rendered
        name=start.name,
        entity_type=start.entity_type,
        records=inline,
        records_file_id=records_file_id,
        custom_fields=start.custom_fields,
        output=start.output,
        format=start.format,
        missing_fields=start.missing_fields,
    )


async def _delete(ctx: MergeContext, records_file_id: str | None) -> None:
    if records_file_id is not None:
        await ctx.storage.blobs.delete(records_file_id)
