"""Campaigns (the scheduler's): the list with each one's next occurrences, a form to make or change one (the
sending account and e-mail template menus come from dispatch and the template service), pause, resume,
delete."""

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from .screens import page_count
from .upstream import ServiceRefused
from .web import Console, Labels, Parts, Person, render

router = APIRouter(include_in_schema=False)
KINDS = ("once", "weekly", "monthly", "now")
WEEKDAYS = range(7)
PER_PAGE = 20
# What the form shows, by name; the rest of a campaign (cc, bcc, a merge to re-run…) is kept as it was.
FORM_FIELDS = (
    "name",
    "document_type",
    "kind",
    "timezone",
    "at",
    "weekday",
    "day",
    "time",
    "catch_up",
    "mailing_id",
    "recipients",
    "subject",
    "body",
    "account_id",
    "email_template_id",
)


class BadForm(ValueError):
    """A field the console reads before the scheduler does (the date and time), named."""


def form_of(campaign: dict[str, Any] | None) -> dict[str, str]:
    """The form's fields, filled from a stored campaign (as GET /campaigns/{id} shows it) or empty."""
    if campaign is None:
        return {name: "" for name in FORM_FIELDS} | {"kind": "weekly", "timezone": "Europe/Paris", "catch_up": "latest"}
    recurrence, message, action = campaign["recurrence"], campaign["message"], campaign["action"]
    at = ""
    if recurrence.get("at"):  # shown as the wall time of its zone, as the form asks for it
        at = (
            datetime.fromisoformat(recurrence["at"])
            .astimezone(ZoneInfo(recurrence["timezone"]))
            .strftime("%Y-%m-%dT%H:%M")
        )
    return {
        "name": campaign["name"],
        "document_type": campaign.get("document_type") or "",
        "kind": recurrence["kind"],
        "timezone": recurrence["timezone"],
        "at": at,
        "weekday": "" if recurrence.get("weekday") is None else str(recurrence["weekday"]),
        "day": "" if recurrence.get("day") is None else str(recurrence["day"]),
        "time": recurrence.get("time_of_day") or "",
        "catch_up": campaign["catch_up"],
        "mailing_id": action.get("mailing_id") or "",
        "recipients": ", ".join(message.get("to") or []),
        "subject": message.get("subject") or "",
        "body": message.get("body") or "",
        "account_id": message.get("account_id") or "",
        "email_template_id": message.get("email_template_id") or "",
    }


def request_of(form: dict[str, str], stored: dict[str, Any] | None) -> dict[str, Any]:
    """The scheduler's CampaignIn from the form; of a stored campaign, what the form does not show is kept."""
    kind = form["kind"]
    recurrence: dict[str, Any] = {"kind": kind, "timezone": form["timezone"].strip() or "Europe/Paris"}
    if kind == "once":
        recurrence["at"] = _aware(form["at"], recurrence["timezone"])
    if kind == "weekly":
        recurrence["weekday"] = int(form["weekday"]) if form["weekday"] else None
    if kind == "monthly":
        recurrence["day"] = int(form["day"]) if form["day"] else None
    if kind in ("weekly", "monthly"):
        recurrence["time"] = form["time"] or None
    kept: dict[str, Any] = {}
    if stored is not None:
        message = stored["message"]
        kept = {name: message[name] for name in ("cc", "bcc", "reply_to", "separate_sends", "copy_to_sender")}
        kept["auto_increment_date"] = stored["auto_increment_date"]
        if stored["action"]["kind"] == "rerun_merge":
            kept["merge"] = {name: value for name, value in stored["action"].items() if name != "kind"}
    body: dict[str, Any] = {
        **kept,
        "name": form["name"],
        "document_type": form["document_type"].strip() or None,
        "recurrence": recurrence,
        "catch_up": form["catch_up"] or "latest",
        "recipients": form["recipients"],
        "subject": form["subject"],
        "body": form["body"],
        "account_id": form["account_id"] or None,
        "email_template_id": form["email_template_id"] or None,
    }
    if "merge" not in kept:
        body["mailing_id"] = form["mailing_id"] or None
    return body


def _aware(wall: str, timezone: str) -> str | None:
    """A date and time of the form (no offset) in the campaign's zone, with its offset."""
    if not wall:
        return None
    try:
        return datetime.fromisoformat(wall).replace(tzinfo=ZoneInfo(timezone)).isoformat()
    except ValueError as exc:
        raise BadForm(f"recurrence.at: {wall!r} is not a date and time") from exc
    except ZoneInfoNotFoundError as exc:
        raise BadForm(f"recurrence.timezone: unknown time zone {timezone!r}") from exc


async def _menus(parts: Console, token: str) -> dict[str, Any]:
    accounts = await parts.services.json("dispatch", "/accounts", token)
    email_templates = await parts.services.json("template", "/email-templates", token, params={"per_page": 100})
    mailings = await parts.services.json("merge", "/mailings", token, params={"per_page": 100})
    return {
        "accounts": accounts,
        "email_templates": email_templates["items"],
        "mailings": [m for m in mailings["items"] if m["status"] == "ready"],
        "kinds": KINDS,
        "weekdays": WEEKDAYS,
    }


@router.get("/campaigns")
async def campaigns(
    request: Request, parts: Parts, person: Person, t: Labels, page: Annotated[int, Query(ge=1)] = 1
) -> Response:
    params = {"page": page, "per_page": PER_PAGE}
    listing = await parts.services.json("scheduler", "/campaigns", person.access_token, params=params)
    pages = page_count(listing["total"], PER_PAGE)
    return render(request, parts, t, "campaigns.html", listing=listing, page=page, pages=pages)


@router.get("/campaigns/new")
async def new_campaign(request: Request, parts: Parts, person: Person, t: Labels) -> Response:
    menus = await _menus(parts, person.access_token)
    form = form_of(None) | {"body": t("send.body.default")}
    return render(request, parts, t, "campaign.html", campaign=None, form=form, **menus)


@router.get("/campaigns/{campaign_id}")
async def campaign_page(
    request: Request,
    parts: Parts,
    person: Person,
    t: Labels,
    campaign_id: str,
    saved: Annotated[bool, Query()] = False,
) -> Response:
    token = person.access_token
    campaign = await parts.services.json("scheduler", f"/campaigns/{quote(campaign_id)}", token)
    menus = await _menus(parts, token)
    form = form_of(campaign)
    return render(request, parts, t, "campaign.html", campaign=campaign, form=form, saved=saved, **menus)


async def _save(request: Request, parts: Console, person: Any, t: Labels, campaign_id: str | None) -> Response:
    token = person.access_token
    given = await request.form()
    form = {name: str(given.get(name) or "") for name in FORM_FIELDS}
    stored = None
    if campaign_id is not None:
        stored = await parts.services.json("scheduler", f"/campaigns/{quote(campaign_id)}", token)
    try:
        body = request_of(form, stored)
        if campaign_id is None:
            saved = await parts.services.call("scheduler", "POST", "/campaigns", token, json=body)
        else:
            saved = await parts.services.call("scheduler", "PUT", f"/campaigns/{quote(campaign_id)}", token, json=body)
    except (ServiceRefused, BadForm) as refused:
        problem = refused.detail if isinstance(refused, ServiceRefused) else str(refused)
        menus = await _menus(parts, token)
        return render(request, parts, t, "campaign.html", 422, campaign=stored, form=form, problem=problem, **menus)
    return RedirectResponse(f"/campaigns/{quote(saved.json()['id'])}?saved=1", status_code=303)


@router.post("/campaigns/new")
async def create_campaign(request: Request, parts: Parts, person: Person, t: Labels) -> Response:
    return await _save(request, parts, person, t, None)


@router.post("/campaigns/{campaign_id}")
async def edit_campaign(request: Request, parts: Parts, person: Person, t: Labels, campaign_id: str) -> Response:
    return await _save(request, parts, person, t, campaign_id)


@router.post("/campaigns/{campaign_id}/pause")
async def pause(parts: Parts, person: Person, campaign_id: str) -> Response:
    await parts.services.call("scheduler", "POST", f"/campaigns/{quote(campaign_id)}/pause", person.access_token)
    return RedirectResponse("/campaigns", status_code=303)


@router.post("/campaigns/{campaign_id}/resume")
async def resume(parts: Parts, person: Person, campaign_id: str) -> Response:
    await parts.services.call("scheduler", "POST", f"/campaigns/{quote(campaign_id)}/resume", person.access_token)
    return RedirectResponse("/campaigns", status_code=303)


@router.post("/campaigns/{campaign_id}/delete")
async def delete(parts: Parts, person: Person, campaign_id: str) -> Response:
    await parts.services.call("scheduler", "DELETE", f"/campaigns/{quote(campaign_id)}", person.access_token)
    return RedirectResponse("/campaigns", status_code=303)
