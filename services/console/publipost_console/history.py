"""The send history (dispatch's): every e-mail sent or not, filtered by document type, status and words, 50 a
page as dispatch gives them; each entry's details with its error, and what dispatch offers to try again: a
failed e-mail sent anew (POST /sends), a paused dispatch resumed (from its page)."""

from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from .upstream import ServiceRefused
from .web import Labels, Parts, Person, render

router = APIRouter(include_in_schema=False)
STATUSES = ("queued", "sent", "failed", "uncertain")
# A send that did not go, or may not have: worth sending again.
RETRIABLE = frozenset({"failed", "uncertain"})


def _filters(document_type: str, status: str, q: str) -> dict[str, str]:
    return {name: value for name, value in (("document_type", document_type), ("status", status), ("q", q)) if value}


@router.get("/history")
async def history(
    request: Request,
    parts: Parts,
    person: Person,
    t: Labels,
    document_type: Annotated[str, Query(max_length=64)] = "",
    status: Annotated[Literal["", "queued", "sent", "failed", "uncertain"], Query()] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1)] = 1,
    retried: Annotated[str | None, Query()] = None,
) -> Response:
    filters = _filters(document_type.strip(), status, q.strip())
    found = await parts.services.json("dispatch", "/history", person.access_token, params={**filters, "page": page})
    return render(
        request,
        parts,
        t,
        "history.html",
        found=found,
        filters={"document_type": document_type, "status": status, "q": q},
        statuses=STATUSES,
        retriable=RETRIABLE,
        page=page,
        query=urlencode(filters),
        retried=retried,
    )


@router.post("/history/retry")
async def retry_send(
    request: Request,
    parts: Parts,
    person: Person,
    t: Labels,
    mailing_id: Annotated[str, Form(min_length=1)],
    document_id: Annotated[str, Form(min_length=1)],
    to: Annotated[str, Form(min_length=1)],
    cc: Annotated[str, Form()] = "",
    bcc: Annotated[str, Form()] = "",
    subject: Annotated[str, Form()] = "",
    document_type: Annotated[str, Form()] = "",
    back: Annotated[str, Form()] = "",
) -> Response:
    """The same document to the same addresses, as a new send of its own (it is in the history too)."""
    body: dict[str, Any] = {
        "mailing_id": mailing_id,
        "document_id": document_id,
        "to": _addresses(to),
        "cc": _addresses(cc),
        "bcc": _addresses(bcc),
        "subject": subject,
        "document_type": document_type or None,
    }
    try:
        sent = (await parts.services.call("dispatch", "POST", "/sends", person.access_token, json=body)).json()
    except ServiceRefused as refused:
        problem = t("error.service", service=refused.service, detail=refused.detail)
        return render(request, parts, t, "error.html", 422, problem=problem)
    query = back if back.startswith("?") or not back else ""
    separator = "&" if query else "?"
    return RedirectResponse(f"/history{query}{separator}retried={quote(sent['send_id'])}", status_code=303)


@router.post("/dispatches/{dispatch_id}/resume")
async def resume_dispatch(parts: Parts, person: Person, dispatch_id: str) -> Response:
    """A paused dispatch goes on with its documents still pending (dispatch refuses one that is not paused)."""
    await parts.services.call("dispatch", "POST", f"/dispatches/{quote(dispatch_id)}/resume", person.access_token)
    return RedirectResponse(f"/dispatches/{quote(dispatch_id)}", status_code=303)


def _addresses(text: str) -> list[str]:
    return [address.strip() for address in text.split(",") if address.strip()]
