"""`publipost mailing create | list | show`, `publipost watch` and `publipost download`: mailings as merge
serves them (POST /mailings, GET /mailings…, the print file's parts and each document's file)."""

import json
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .api import CommandFailed, ServiceClient
from .progress import MAILING_SETTLED, follow, mailing_stages, once_recorded
from .session import Session, counted

mailing_app = typer.Typer(help="Mailings: create one from a file of records, list them, show one.")

RECORDS_TYPES = {
    ".json": "application/json",
    ".ndjson": "application/x-ndjson",
    ".jsonl": "application/x-ndjson",
    ".csv": "text/csv",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
FAILURES_READ = 200
FAILURES_SHOWN = 5
JsonOption = Annotated[bool, typer.Option("--json", help="The service's answer, as JSON (for scripts).")]
NoWait = Annotated[bool, typer.Option("--no-wait", help="Return at once instead of following progress.")]


def custom_fields(values: list[str]) -> dict[str, str]:
    """`--field name=value`, repeated: the template's custom fields."""
    fields = {}
    for value in values:
        name, equals, given = value.partition("=")
        if not equals or not name.strip():
            raise typer.BadParameter(f"{value!r} is not name=value", param_hint="--field")
        fields[name.strip()] = given
    return fields


def summary(view: dict[str, Any]) -> str:
    """One line a person reads when a mailing settles."""
    said = [f"{view['name']} ({view['id']}): {view['status'].replace('_', ' ')}, {counted(view['documents'], 'document')}"]
    if view.get("failed"):
        said.append(f"{view['failed']} failed")
    parts = view.get("parts") or []
    if parts:
        pages = sum(part["pages"] for part in parts)
        said.append(f"print file in {len(parts)} part{'s' if len(parts) > 1 else ''}, {pages} pages")
    if view.get("warnings_count"):
        said.append(f"{view['warnings_count']} warnings (publipost mailing show {view['id']})")
    return ", ".join(said)


def watch_mailing(
    session: Session, merge: ServiceClient, mailing_id: str, *, just_accepted: bool = False
) -> dict[str, Any]:
    """Progress bars until the mailing settles; a mailing that failed is a failure of the command.
    `just_accepted`: merge may not have recorded it yet."""

    def fetch() -> dict[str, Any]:
        seen: dict[str, Any] = merge.get(f"/mailings/{mailing_id}")
        return seen

    view = follow(
        once_recorded(fetch, {"status": "rendering"}) if just_accepted else fetch,
        mailing_stages,
        lambda seen: seen["status"] in MAILING_SETTLED,
        session.out,
        session.poll_s,
    )
    failures = failed_documents(merge, mailing_id) if view.get("failed") else []
    if view["status"] in ("failed", "rejected"):
        raise CommandFailed("\n".join([summary(view), *failures]))
    session.out.print("\n".join([summary(view), *failures]), markup=False, highlight=False)
    return view


def failed_documents(merge: ServiceClient, mailing_id: str) -> list[str]:
    """Why documents failed, as merge recorded it, from the first page of documents: enough to see the cause,
    without reading a large mailing whole."""
    page = merge.get(f"/mailings/{mailing_id}/documents", limit=FAILURES_READ)
    failed = [d for d in page["items"] if d["status"] == "failed"]
    shown = [f"  {d['document_number'] or d['record_id']}: {d['error']}" for d in failed[:FAILURES_SHOWN]]
    if len(failed) > FAILURES_SHOWN or page["next_after"] is not None:
        shown.append(f"  … (every document: GET /mailings/{mailing_id}/documents)")
    return shown


class EInvoice(StrEnum):
    """How an invoice mailing's documents go by e-mail (merge's `format`)."""

    PDF = "pdf"
    FACTURX = "facturx"
    UBL = "ubl"


@mailing_app.command("create")
def create(
    ctx: typer.Context,
    template: Annotated[str, typer.Option(help="The template's id.")],
    records: Annotated[
        Path,
        typer.Option(
            exists=True,
            dir_okay=False,
            readable=True,
            help="The records: .json, .ndjson, .csv or .xlsx, one per document.",
        ),
    ],
    name: Annotated[str | None, typer.Option(help="The mailing's name.")] = None,
    field: Annotated[
        list[str] | None, typer.Option(help="A custom field of the template, name=value (repeatable).")
    ] = None,
    request_id: Annotated[
        str | None,
        typer.Option(help="The idempotency key: the same request id never makes a second mailing. Default: a new one."),
    ] = None,
    file_format: Annotated[
        str, typer.Option("--format", help="pdf (e-mailable), or docx: documents not converted.")
    ] = "pdf",
    einvoice: Annotated[
        EInvoice,
        typer.Option(
            "--e-invoice",
            help="Invoice templates: how documents go by e-mail unless the directory says otherwise: "
            "pdf, facturx (the Factur-X PDF) or ubl (the PDF and a UBL 2.1 XML).",
        ),
    ] = EInvoice.PDF,
    no_wait: NoWait = False,
) -> None:
    """Start a mailing, then follow it: rendering, converting to PDF, ready."""
    session: Session = ctx.obj
    fields = custom_fields(field or [])
    request_id = request_id or str(uuid.uuid4())
    form = {
        "template_id": template,
        "request_id": request_id,
        "custom_fields": json.dumps(fields),
        "output": file_format,
    }
    if einvoice is not EInvoice.PDF:
        form["format"] = einvoice.value
    if name is not None:
        form["name"] = name
    content_type = RECORDS_TYPES.get(records.suffix.lower(), "application/octet-stream")
    with session.client("merge") as merge, records.open("rb") as file:
        accepted = merge.call("POST", "/mailings", data=form, files={"file": (records.name, file, content_type)})
        mailing_id = accepted["mailing_id"]
        session.out.print(f"mailing {mailing_id} requested (request id {accepted['request_id']})")
        if not no_wait:
            watch_mailing(session, merge, mailing_id, just_accepted=True)


@mailing_app.command("list")
def list_mailings(
    ctx: typer.Context,
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=100)] = 20,
    status: Annotated[str | None, typer.Option(help="Only mailings in this status (ready, rendering…).")] = None,
    name: Annotated[str | None, typer.Option(help="Only names containing this.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The tenant's mailings, newest first, a page at a time."""
    session: Session = ctx.obj
    with session.client("merge") as merge:
        found = merge.get("/mailings", page=page, per_page=per_page, status=status, name=name)
    if as_json:
        session.print_json(found)
        return
    table = Table("created", "id", "name", "status", "documents", box=None)
    for mailing in found["items"]:
        table.add_row(
            mailing["created_at"][:16].replace("T", " "),
            mailing["id"],
            mailing["name"],
            mailing["status"].replace("_", " "),
            str(mailing["documents"] or mailing["expected"]),
        )
    session.out.print(table)
    pages = max(1, -(-found["total"] // found["per_page"]))
    more = f"; --page {page + 1} for the next" if page < pages else ""
    session.out.print(f"page {found['page']} of {pages} ({found['total']} mailings){more}")


@mailing_app.command("show")
def show(ctx: typer.Context, mailing_id: str, as_json: JsonOption = False) -> None:
    """One mailing: status, counts, print file parts, warnings, what it was regrouped from or into."""
    session: Session = ctx.obj
    with session.client("merge") as merge:
        view = merge.get(f"/mailings/{mailing_id}")
    if as_json:
        session.print_json(view)
        return
    out = session.out
    out.print(summary(view))
    out.print(
        f"created {view['created_at']}, template {view.get('template_id')} v{view.get('template_version')}, "
        f"output {view['output']}"
    )
    for part in view.get("parts") or []:
        out.print(f"  part {part['number']}: {counted(part['documents'], 'document')}, {counted(part['pages'], 'page')}")
    for warning in view.get("warnings") or []:
        out.print(f"  warning: {warning.get('message', warning)}")
    if view.get("regrouped_from"):
        source = view["regrouped_from"]
        out.print(f"regrouped from {source['mailing_id']} after dispatch {source['dispatch_id']} ({source['outcome']})")
    if view.get("replaced_by"):
        out.print(f"replaced by {', '.join(view['replaced_by'])}")


def watch(ctx: typer.Context, mailing_id: str) -> None:
    """Follow a mailing until it settles, one progress bar per stage."""
    session: Session = ctx.obj
    with session.client("merge") as merge:
        watch_mailing(session, merge, mailing_id)


def download(
    ctx: typer.Context,
    mailing_id: str,
    part: Annotated[int | None, typer.Option(min=1, help="This part of the print file.")] = None,
    document: Annotated[str | None, typer.Option(help="This document's file instead (its id).")] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="The file to write, or a folder (default: here).")
    ] = None,
    file_format: Annotated[str, typer.Option("--format", help="A document as pdf or docx.")] = "pdf",
) -> None:
    """Download the print file (every part, or --part N) or one document, named as the service names it."""
    session: Session = ctx.obj
    if part is not None and document is not None:
        raise typer.BadParameter("give --part or --document, not both", param_hint="--document")
    folder, target = (output, None) if output is None or output.is_dir() else (output.parent, output)
    folder = folder or Path.cwd()
    with session.client("merge") as merge:
        if document is not None:
            path = f"/mailings/{mailing_id}/documents/{document}/content"
            files = [merge.download(path, folder, target, f"{document}.{file_format}", format=file_format)]
        else:
            numbers = [part] if part is not None else _parts(merge, mailing_id)
            if target is not None and len(numbers) > 1:
                raise typer.BadParameter(
                    f"the print file has {len(numbers)} parts: give a folder, or --part N", param_hint="--output"
                )
            files = [
                merge.download(f"/mailings/{mailing_id}/parts/{n}", folder, target, f"{mailing_id}-part{n}.pdf")
                for n in numbers
            ]
    for written in files:
        session.out.print(f"wrote {written} ({written.stat().st_size} bytes)")


def _parts(merge: ServiceClient, mailing_id: str) -> list[int]:
    view = merge.get(f"/mailings/{mailing_id}")
    numbers = [part["number"] for part in view.get("parts") or []]
    if not numbers:
        raise CommandFailed(f"mailing {mailing_id} has no print file ({view['status'].replace('_', ' ')})")
    return numbers
