"""Send a mailing by e-mail: the account and e-mail template menus, a confirmation from dispatch's preview
with tick boxes, the send, and its page that follows the counts until it ends."""

import time
import uuid
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from .addresses import single_document_addresses
from .screens import CHOOSABLE_DOCUMENTS, DISPATCH_OVER, NothingChosen, chosen_documents, dispatch_status_counts
from .session import Session
from .upstream import ServiceRefused
from .web import Console, Labels, Parts, Person, render

# How long after a send its page waits for dispatch to record it (dispatch answers 404 until then).
RECORDING_WINDOW_S = 60

router = APIRouter(include_in_schema=False)


class SendChoice(BaseModel):
    """The send form: account, e-mail template, subject and body, and for one document its address."""

    account_id: str = ""
    email_template_id: str = ""
    subject: str = ""
    body: str = ""
    to: str = Field(default="", max_length=254)


async def _menus(parts: Console, token: str, mailing: dict[str, Any]) -> dict[str, Any]:
    accounts = await parts.services.json("dispatch", "/accounts", token)
    email_templates = await parts.services.json("template", "/email-templates", token, params={"per_page": 100})
    addresses = await single_document_addresses(parts, token, mailing)
    return {"accounts": accounts, "email_templates": email_templates["items"], "addresses": addresses}


@router.get("/mailings/{mailing_id}/send")
async def send_form(request: Request, parts: Parts, person: Person, t: Labels, mailing_id: str) -> Response:
    mailing = await parts.services.json("merge", f"/mailings/{quote(mailing_id)}", person.access_token)
    menus = await _menus(parts, person.access_token, mailing)
    chosen = {"account_id": "", "email_template_id": "", "subject": "", "body": t("send.body.default"), "to": ""}
    return render(request, parts, t, "send.html", mailing=mailing, chosen=chosen, **menus)


@router.post("/mailings/{mailing_id}/send/edit")
async def edit_form(
    request: Request,
    parts: Parts,
    person: Person,
    t: Labels,
    mailing_id: str,
    choice: Annotated[SendChoice, Form()],
) -> Response:
    """Back from the confirmation to the form, filled as it was."""
    mailing = await parts.services.json("merge", f"/mailings/{quote(mailing_id)}", person.access_token)
    chosen = choice.model_dump()
    menus = await _menus(parts, person.access_token, mailing)
    return render(request, parts, t, "send.html", mailing=mailing, chosen=chosen, **menus)


def _request(mailing_id: str, chosen: dict[str, str], document_ids: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "mailing_id": mailing_id,
        "account_id": chosen["account_id"] or None,
        "email_template_id": chosen["email_template_id"] or None,
        "subject": chosen["subject"],
        "body": chosen["body"],
    }
    if chosen.get("to"):  # an address chosen for the one document, instead of dispatch's rules
        body["to"] = [chosen["to"]]
    if document_ids is not None:
        body["document_ids"] = document_ids
    return body


@router.post("/mailings/{mailing_id}/send/check")
async def confirm(
    request: Request,
    parts: Parts,
    person: Person,
    t: Labels,
    mailing_id: str,
    choice: Annotated[SendChoice, Form()],
) -> Response:
    """The confirmation: how many documents go, which cannot and why, the documents to untick."""
    token = person.access_token
    chosen = choice.model_dump()
    mailing = await parts.services.json("merge", f"/mailings/{quote(mailing_id)}", token)
    try:
        preview = (
            await parts.services.call(
                "dispatch", "POST", "/dispatches/preview", token, json=_request(mailing_id, chosen)
            )
        ).json()
    except ServiceRefused as refused:
        return await _form_again(request, parts, person, t, mailing, chosen, refused.detail)
    documents: list[dict[str, Any]] = []
    if mailing["documents"] <= CHOOSABLE_DOCUMENTS:
        page = await parts.services.json(
            "merge", f"/mailings/{quote(mailing_id)}/documents", token, params={"limit": CHOOSABLE_DOCUMENTS}
        )
        documents = page["items"]
    unsendable = {u["document_id"]: u["reason"] for u in preview["unsendable"]}
    return render(
        request,
        parts,
        t,
        "confirm.html",
        mailing=mailing,
        preview=preview,
        chosen=chosen,
        documents=documents,
        unsendable=unsendable,
        limit=CHOOSABLE_DOCUMENTS,
        dispatch_id=str(uuid.uuid4()),  # made once per confirmation: a second click sends nothing twice
    )


async def _form_again(
    request: Request,
    parts: Console,
    person: Session,
    t: Labels,
    mailing: dict[str, Any],
    chosen: dict[str, str],
    problem: str,
) -> Response:
    menus = await _menus(parts, person.access_token, mailing)
    return render(request, parts, t, "send.html", 422, mailing=mailing, chosen=chosen, problem=problem, **menus)


@router.post("/mailings/{mailing_id}/send")
async def send(
    request: Request,
    parts: Parts,
    person: Person,
    t: Labels,
    mailing_id: str,
    dispatch_id: Annotated[str, Form(min_length=1, max_length=128)],
    choice: Annotated[SendChoice, Form()],
    offered: Annotated[list[str] | None, Form()] = None,
    document: Annotated[list[str] | None, Form()] = None,
) -> Response:
    token = person.access_token
    chosen = choice.model_dump()
    try:
        document_ids = chosen_documents(offered or [], document or [])
        request_body = {**_request(mailing_id, chosen, document_ids), "dispatch_id": dispatch_id}
        await parts.services.call("dispatch", "POST", "/dispatches", token, json=request_body)
    except (ServiceRefused, NothingChosen) as refused:
        mailing = await parts.services.json("merge", f"/mailings/{quote(mailing_id)}", token)
        problem = refused.detail if isinstance(refused, ServiceRefused) else str(refused)
        return await _form_again(request, parts, person, t, mailing, chosen, problem)
    return RedirectResponse(f"/dispatches/{quote(dispatch_id)}?since={int(time.time())}", status_code=303)


async def _dispatch_view(parts: Console, token: str, dispatch_id: str, since: int | None) -> dict[str, Any]:
    """The dispatch as dispatch tells it. It answers 404 for the instant between accepting a send and
    recording it: within RECORDING_WINDOW_S of the send (`since`) that is shown as being prepared, after it
    (or for an id no send of this page made) it is an unknown dispatch."""
    recording = since is not None and time.time() - since < RECORDING_WINDOW_S
    path = f"/dispatches/{quote(dispatch_id)}"
    answer = await parts.services.call("dispatch", "GET", path, token, ok=(404,) if recording else ())
    dispatch = answer.json() if answer.status_code == 200 else not_recorded_yet(dispatch_id)
    return {
        "dispatch": dispatch,
        "counts": dispatch_status_counts(dispatch),
        "over": dispatch["status"] in DISPATCH_OVER,
        "since": since if answer.status_code == 404 else None,
    }


def not_recorded_yet(dispatch_id: str) -> dict[str, Any]:
    return {"dispatch_id": dispatch_id, "status": "fanning_out", "sent": 0, "failed": 0, "total": 0, "reason": None}


@router.get("/dispatches/{dispatch_id}")
async def dispatch_page(
    request: Request, parts: Parts, person: Person, t: Labels, dispatch_id: str, since: int | None = None
) -> Response:
    view = await _dispatch_view(parts, person.access_token, dispatch_id, since)
    return render(request, parts, t, "dispatch.html", **view)


@router.get("/dispatches/{dispatch_id}/progress")
async def dispatch_progress(
    request: Request, parts: Parts, person: Person, t: Labels, dispatch_id: str, since: int | None = None
) -> Response:
    try:
        view = await _dispatch_view(parts, person.access_token, dispatch_id, since)
    except ServiceRefused:  # htmx leaves an error answer unshown: the whole page says what went wrong
        return Response(status_code=204, headers={"HX-Redirect": f"/dispatches/{quote(dispatch_id)}"})
    return render(request, parts, t, "dispatch_progress.html", **view)
