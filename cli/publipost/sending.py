"""`publipost send`, `resend-unsent` and `history`: e-mailing a mailing's documents through dispatch (POST
/dispatches, /dispatches/preview, GET /dispatches/{id}) and reading what was sent (GET /history)."""

from typing import Annotated, Any

import typer
from rich.table import Table

from .api import CommandFailed, ServiceClient
from .progress import DISPATCH_SETTLED, dispatch_stages, follow, once_recorded
from .session import Session, counted

Account = Annotated[str | None, typer.Option("--account", help="The sending account's id (default: the tenant's).")]
EmailTemplate = Annotated[
    str | None, typer.Option("--email-template", help="An e-mail template's id: its subject and body.")
]
Subject = Annotated[str | None, typer.Option(help="The subject, with {document_number}, {client_name}… variables.")]
NoWait = Annotated[bool, typer.Option("--no-wait", help="Return once the dispatch is accepted.")]


def dispatch_body(
    mailing_id: str, account: str | None, email_template: str | None, subject: str | None, documents: list[str]
) -> dict[str, Any]:
    """dispatch's DispatchIn, with only what was chosen: the service's defaults hold for the rest."""
    chosen = {
        "mailing_id": mailing_id,
        "account_id": account,
        "email_template_id": email_template,
        "subject": subject,
        "document_ids": documents or None,
    }
    return {key: value for key, value in chosen.items() if value is not None}


def show_preview(session: Session, preview: dict[str, Any]) -> None:
    session.out.print(
        f"{counted(preview['documents'], 'document')}: {preview['will_send']} will be sent, "
        f"{preview['without_address']} will not ({preview['estimated_bytes']} bytes of e-mail)"
    )
    for unsendable in preview["unsendable"]:
        session.out.print(f"  {unsendable['document_number']} ({unsendable['document_id']}): {unsendable['reason']}")


def start_dispatch(session: Session, dispatch: ServiceClient, body: dict[str, Any], wait: bool) -> None:
    """Start the dispatch and, when `wait`, follow it to its end with a progress bar."""
    dispatch_id = dispatch.post("/dispatches", body)["dispatch_id"]
    session.out.print(f"dispatch {dispatch_id} of mailing {body['mailing_id']} started")
    if not wait:
        return
    view = follow(
        # dispatch records the dispatch when its consumer takes the request, a moment after answering 202.
        once_recorded(lambda: dispatch.get(f"/dispatches/{dispatch_id}"), {"status": "requested", "total": 0}),
        dispatch_stages,
        lambda seen: seen["status"] in DISPATCH_SETTLED,
        session.out,
        session.poll_s,
    )
    if view["status"] == "refused":
        raise CommandFailed(f"dispatch {dispatch_id} refused: {view.get('reason')}")
    if view["status"] == "paused":
        raise CommandFailed(
            f"dispatch {dispatch_id} paused after {view['errors']} errors: {view.get('reason')} "
            f"(it goes on once resumed: POST /dispatches/{dispatch_id}/resume)"
        )
    not_sent = view["total"] - view["sent"]
    session.out.print(f"sent {view['sent']} / not sent {not_sent}")
    if not_sent:
        session.out.print(
            f'the documents not sent are regrouped in a "(not sent by e-mail)" mailing: see `publipost history '
            f"--status failed`, fix their addresses, then `publipost resend-unsent {body['mailing_id']}`"
        )


def send(
    ctx: typer.Context,
    mailing_id: str,
    account: Account = None,
    email_template: EmailTemplate = None,
    subject: Subject = None,
    document: Annotated[
        list[str] | None, typer.Option(help="Only this document of the mailing (its id; repeatable).")
    ] = None,
    preview: Annotated[bool, typer.Option(help="Say what would be sent, and what not, sending nothing.")] = False,
    no_wait: NoWait = False,
) -> None:
    """E-mail a mailing's documents to their recipients, following the dispatch to its end."""
    session: Session = ctx.obj
    body = dispatch_body(mailing_id, account, email_template, subject, document or [])
    with session.client("dispatch") as dispatch:
        if preview:
            show_preview(session, dispatch.post("/dispatches/preview", body))
            return
        start_dispatch(session, dispatch, body, wait=not no_wait)


def not_sent_mailing(merge: ServiceClient, mailing_id: str) -> dict[str, Any]:
    """The "(not sent by e-mail)" mailing of `mailing_id` as it stands now: itself, or, following each regrouping
    (replaced_by), the latest one still holding documents not sent."""
    view: dict[str, Any] = merge.get(f"/mailings/{mailing_id}")
    while view["status"] == "replaced":
        regrouped = [merge.get(f"/mailings/{next_id}") for next_id in view.get("replaced_by") or []]
        following = next((m for m in regrouped if (m.get("regrouped_from") or {}).get("outcome") == "not_sent"), None)
        if following is None:
            raise CommandFailed(f"every document of mailing {mailing_id} was sent: nothing to re-send")
        view = following
    if (view.get("regrouped_from") or {}).get("outcome") != "not_sent":
        raise CommandFailed(
            f"mailing {mailing_id} ({view['status'].replace('_', ' ')}) has not been regrouped after a dispatch: "
            f"send it with `publipost send {mailing_id}` (a dispatch that just ended is regrouped within seconds)"
        )
    return view


def resend_unsent(
    ctx: typer.Context,
    mailing_id: Annotated[str, typer.Argument(help='The mailing sent, or its "(not sent by e-mail)" mailing.')],
    account: Account = None,
    email_template: EmailTemplate = None,
    subject: Subject = None,
    no_wait: NoWait = False,
) -> None:
    """E-mail again the documents a dispatch did not send (after their addresses were fixed)."""
    session: Session = ctx.obj
    with session.client("merge") as merge:
        unsent = not_sent_mailing(merge, mailing_id)
    session.out.print(f"{unsent['name']} ({unsent['id']}): {counted(unsent['documents'], 'document')} to send again")
    with session.client("dispatch") as dispatch:
        start_dispatch(
            session, dispatch, dispatch_body(unsent["id"], account, email_template, subject, []), not no_wait
        )


def history(
    ctx: typer.Context,
    document_type: Annotated[str | None, typer.Option("--type", help="Only this document type.")] = None,
    status: Annotated[str | None, typer.Option(help="queued, sent, failed or uncertain.")] = None,
    text: Annotated[str | None, typer.Option(help="Words of the subject, document name or number.")] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="The service's answer, as JSON.")] = False,
) -> None:
    """Every e-mail sent (or not), newest first, 50 a page."""
    session: Session = ctx.obj
    with session.client("dispatch") as dispatch:
        found = dispatch.get("/history", document_type=document_type, status=status, q=text, page=page)
    if as_json:
        session.print_json(found)
        return
    table = Table("at", "status", "document", "to", "subject", "error", box=None)
    for entry in found["items"]:
        table.add_row(
            entry["at"][:19].replace("T", " "),
            entry["status"],
            entry["document"]["document_number"],
            ", ".join(entry["to"]),
            entry["subject"] or "",
            entry["error"] or "",
        )
    session.out.print(table)
    more = f"; --page {page + 1} for more" if found["has_next"] else ""
    session.out.print(f"page {found['page']}, {len(found['items'])} sends{more}")
