"""Mailings: the list (newest first, paginated), progress while they are made, a mailing with its documents,
approve / reject / delete, and the downloads of its documents and print-file parts."""

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from .downloads import pass_through
from .screens import IN_PROGRESS, can_send, is_not_sent, mailing_progress, page_count
from .web import Labels, Parts, Person, render

router = APIRouter(include_in_schema=False)
EMAIL_STATES = ("never_sent", "sent", "not_sent")
DOCUMENTS_PER_PAGE = 50


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/mailings", status_code=303)


@router.get("/mailings")
async def mailing_list(
    request: Request, parts: Parts, person: Person, t: Labels, page: Annotated[int, Query(ge=1, le=100_000)] = 1
) -> Response:
    per_page = parts.settings.page_size
    listing = await parts.services.json(
        "merge", "/mailings", person.access_token, params={"page": page, "per_page": per_page}
    )
    return render(
        request,
        parts,
        t,
        "mailings.html",
        listing=listing,
        page=page,
        pages=page_count(listing["total"], per_page),
        progress={m["id"]: mailing_progress(m) for m in listing["items"]},
        in_progress=IN_PROGRESS,
    )


@router.get("/mailings/{mailing_id}/row")
async def mailing_row(request: Request, parts: Parts, person: Person, t: Labels, mailing_id: str) -> Response:
    """A row of the list, asked again by the list while its mailing is being made."""
    mailing = await parts.services.json("merge", f"/mailings/{quote(mailing_id)}", person.access_token)
    values = {"mailing": mailing, "progress": mailing_progress(mailing), "in_progress": IN_PROGRESS}
    return render(request, parts, t, "mailing_row.html", **values)


@router.get("/mailings/{mailing_id}/status")
async def mailing_status(request: Request, parts: Parts, person: Person, t: Labels, mailing_id: str) -> Response:
    """The status on a mailing's own page, asked again while the mailing is being made; once it is settled
    the page is reloaded whole, so its print file and documents appear."""
    mailing = await parts.services.json("merge", f"/mailings/{quote(mailing_id)}", person.access_token)
    if mailing["status"] not in IN_PROGRESS:
        return Response(status_code=204, headers={"HX-Refresh": "true"})
    values = {"mailing": mailing, "progress": mailing_progress(mailing), "in_progress": IN_PROGRESS, "own_page": True}
    return render(request, parts, t, "mailing_status.html", **values)


@router.get("/mailings/{mailing_id}")
async def mailing_page(
    request: Request,
    parts: Parts,
    person: Person,
    t: Labels,
    mailing_id: str,
    email_state: Annotated[str | None, Query(pattern="^(never_sent|sent|not_sent)?$")] = None,
    after: Annotated[int, Query(ge=-1)] = -1,
) -> Response:
    token = person.access_token
    mailing = await parts.services.json("merge", f"/mailings/{quote(mailing_id)}", token)
    params: dict[str, str | int] = {"after": after, "limit": DOCUMENTS_PER_PAGE}
    if email_state:
        params["email_state"] = email_state
    documents = await parts.services.json("merge", f"/mailings/{quote(mailing_id)}/documents", token, params=params)
    return render(
        request,
        parts,
        t,
        "mailing.html",
        mailing=mailing,
        documents=documents,
        email_state=email_state or "",
        email_states=EMAIL_STATES,
        after=after,
        progress=mailing_progress(mailing),
        in_progress=IN_PROGRESS,
        can_send=can_send(mailing),
        not_sent=is_not_sent(mailing),
    )


@router.post("/mailings/{mailing_id}/approve")
async def approve(parts: Parts, person: Person, mailing_id: str) -> RedirectResponse:
    await parts.services.call("merge", "POST", f"/mailings/{quote(mailing_id)}/approve", person.access_token)
    return RedirectResponse(f"/mailings/{quote(mailing_id)}", status_code=303)


@router.post("/mailings/{mailing_id}/reject")
async def reject(parts: Parts, person: Person, mailing_id: str) -> RedirectResponse:
    await parts.services.call("merge", "POST", f"/mailings/{quote(mailing_id)}/reject", person.access_token)
    return RedirectResponse(f"/mailings/{quote(mailing_id)}", status_code=303)


@router.post("/mailings/{mailing_id}/delete")
async def delete(parts: Parts, person: Person, mailing_id: str) -> RedirectResponse:
    await parts.services.call("merge", "DELETE", f"/mailings/{quote(mailing_id)}", person.access_token)
    return RedirectResponse("/mailings", status_code=303)


@router.get("/mailings/{mailing_id}/parts/{number}")
async def download_part(parts: Parts, person: Person, mailing_id: str, number: int) -> Response:
    return await pass_through(parts, "merge", person.access_token, f"/mailings/{quote(mailing_id)}/parts/{number}")


@router.get("/mailings/{mailing_id}/documents/{document_id}")
async def download_document(parts: Parts, person: Person, mailing_id: str, document_id: str) -> Response:
    path = f"/mailings/{quote(mailing_id)}/documents/{quote(document_id)}/content"
    return await pass_through(parts, "merge", person.access_token, path)
