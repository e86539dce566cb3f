"""A client's address in the recipient directory, fixed from a mailing whose documents could not be sent."""

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from .screens import safe_next
from .upstream import ServiceRefused
from .web import Labels, Parts, Person, render

router = APIRouter(include_in_schema=False)
# What GET /recipients/{n} adds to what PUT takes: the rest is given back as it was.
READ_ONLY = ("customer_number", "created_at", "updated_at")


@router.get("/recipients/{customer_number}")
async def recipient_form(
    request: Request,
    parts: Parts,
    person: Person,
    t: Labels,
    customer_number: str,
    back: Annotated[str | None, Query()] = None,
) -> Response:
    path = f"/recipients/{quote(customer_number)}"
    answer = await parts.services.call("directory", "GET", path, person.access_token, ok=(404,))
    recipient = answer.json() if answer.status_code == 200 else {}
    return render(
        request,
        parts,
        t,
        "recipient.html",
        customer=customer_number,
        email=recipient.get("email") or "",
        back=safe_next(back),
    )


@router.post("/recipients/{customer_number}")
async def save_recipient(
    request: Request,
    parts: Parts,
    person: Person,
    t: Labels,
    customer_number: str,
    email: Annotated[str, Form()],
    back: Annotated[str | None, Form()] = None,
) -> Response:
    """The address is changed and everything else the directory holds on the client is kept (PUT replaces)."""
    path = f"/recipients/{quote(customer_number)}"
    token = person.access_token
    answer = await parts.services.call("directory", "GET", path, token, ok=(404,))
    recipient = answer.json() if answer.status_code == 200 else {}
    kept = {name: value for name, value in recipient.items() if name not in READ_ONLY}
    try:
        await parts.services.call("directory", "PUT", path, token, json={**kept, "email": email.strip() or None})
    except ServiceRefused as refused:
        return render(
            request,
            parts,
            t,
            "recipient.html",
            422,
            customer=customer_number,
            email=email,
            back=safe_next(back),
            problem=refused.detail,
        )
    return render(
        request, parts, t, "recipient.html", customer=customer_number, email=email, back=safe_next(back), saved=True
    )
