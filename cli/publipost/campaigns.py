"""`publipost campaigns list | show | pause | resume | delete`: the scheduler's campaigns (GET /campaigns…)."""

from typing import Annotated, Any

import typer
from rich.table import Table

from .session import Session

campaigns_app = typer.Typer(help="Campaigns: sends on a schedule.")
JsonOption = Annotated[bool, typer.Option("--json", help="The service's answer, as JSON (for scripts).")]


def recurrence_text(recurrence: dict[str, Any]) -> str:
    kind = recurrence["kind"]
    zone = recurrence.get("timezone", "")
    if kind == "once":
        return f"once at {recurrence['at']}"
    if kind == "weekly":
        day = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")[recurrence["weekday"]]
        return f"every {day} at {recurrence['time']} {zone}"
    if kind == "monthly":
        return f"monthly on day {recurrence['day']} at {recurrence['time']} {zone}"
    return kind


def action_text(action: dict[str, Any]) -> str:
    if action.get("mailing_id"):
        return f"mailing {action['mailing_id']}"
    return f"a new merge of template {action['template_id']} for segment {action['segment_id']}"


@campaigns_app.command("list")
def list_campaigns(
    ctx: typer.Context,
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=100)] = 20,
    as_json: JsonOption = False,
) -> None:
    """The tenant's campaigns, newest first."""
    session: Session = ctx.obj
    with session.client("scheduler") as scheduler:
        found = scheduler.get("/campaigns", page=page, per_page=per_page)
    if as_json:
        session.print_json(found)
        return
    table = Table("id", "name", "status", "when", "next run", box=None)
    for campaign in found["items"]:
        table.add_row(
            campaign["id"],
            campaign["name"],
            campaign["status"],
            recurrence_text(campaign["recurrence"]),
            (campaign["next_run_at"] or "—")[:16].replace("T", " "),
        )
    session.out.print(table)
    pages = max(1, -(-found["total"] // found["per_page"]))
    session.out.print(f"page {found['page']} of {pages} ({found['total']} campaigns)")


def show_campaign(session: Session, campaign: dict[str, Any]) -> None:
    out = session.out
    out.print(f"{campaign['name']} ({campaign['id']}): {campaign['status']}, {recurrence_text(campaign['recurrence'])}")
    out.print(f"sends {action_text(campaign['action'])}")
    if campaign["next_occurrences"]:
        out.print(f"next: {', '.join(at[:16].replace('T', ' ') for at in campaign['next_occurrences'])}")
    for occurrence in campaign.get("occurrences", []):
        counts = f", sent {occurrence['sent']}, failed {occurrence['failed']}" if occurrence["sent"] is not None else ""
        error = f": {occurrence['error']}" if occurrence["error"] else ""
        out.print(f"  {occurrence['at'][:16].replace('T', ' ')} {occurrence['outcome']}{counts}{error}")


@campaigns_app.command("show")
def show(ctx: typer.Context, campaign_id: str, as_json: JsonOption = False) -> None:
    """One campaign: its schedule, next occurrences and what each fired one sent."""
    session: Session = ctx.obj
    with session.client("scheduler") as scheduler:
        campaign = scheduler.get(f"/campaigns/{campaign_id}")
    if as_json:
        session.print_json(campaign)
    else:
        show_campaign(session, campaign)


@campaigns_app.command("pause")
def pause(ctx: typer.Context, campaign_id: str) -> None:
    """No occurrence fires until resumed."""
    session: Session = ctx.obj
    with session.client("scheduler") as scheduler:
        show_campaign(session, scheduler.post(f"/campaigns/{campaign_id}/pause"))


@campaigns_app.command("resume")
def resume(ctx: typer.Context, campaign_id: str) -> None:
    """Firing goes on from the next occurrence; what was missed while paused is not replayed."""
    session: Session = ctx.obj
    with session.client("scheduler") as scheduler:
        show_campaign(session, scheduler.post(f"/campaigns/{campaign_id}/resume"))


@campaigns_app.command("delete")
def delete(
    ctx: typer.Context,
    campaign_id: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """The campaign stops and leaves the lists; what it sent stays in the history."""
    session: Session = ctx.obj
    if not yes:
        typer.confirm(f"delete campaign {campaign_id}?", abort=True)
    with session.client("scheduler") as scheduler:
        scheduler.call("DELETE", f"/campaigns/{campaign_id}")
    session.out.print(f"campaign {campaign_id} deleted")
