"""Settings, for a tenant's admins: sending accounts (with a connection test), the tenant's language and print
file parts (merge), its e-mail switch (dispatch), its people and API keys (the identity routes the template
service serves). The console shows the page to admins only; the services refuse anyone else anyway."""

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from .session import Session
from .upstream import ServiceRefused
from .web import Console, Labels, Parts, Person, render

router = APIRouter(include_in_schema=False)
TLS_MODES = ("starttls", "tls", "none")
SHARED_ROLES = ("operator", "integrator")
ROLES = ("admin", "operator", "viewer", "integrator")
BACKENDS = ("libreoffice", "gotenberg")
# What the account form shows; the rest of an account (people it is shared with, pause after errors) is kept.
ACCOUNT_FIELDS = ("name", "host", "port", "tls", "login", "password", "from_address", "from_name", "reply_to")
LIMIT_FIELDS = ("rate_per_s", "connections", "daily_cap")


class NotAdmin(Exception):
    """A page of the settings asked by someone who is not an admin of the tenant."""


def is_admin(person: Session) -> bool:
    return "admin" in person.roles


def admin(person: Person) -> Session:
    if not is_admin(person):
        raise NotAdmin()
    return person


AdminPerson = Annotated[Session, Depends(admin)]


async def _page(
    request: Request, parts: Console, person: Session, t: Labels, status: int = 200, **shown: Any
) -> Response:
    token = person.access_token
    values = {
        "accounts": await parts.services.json("dispatch", "/accounts", token),
        "sending": await parts.services.json("dispatch", "/settings/sending", token),
        "tenant": await parts.services.json("merge", "/settings", token),
        "users": await parts.services.json("template", "/users", token, params={"per_page": 100}),
        "api_keys": await parts.services.json("template", "/api-keys", token, params={"per_page": 100}),
        **await _conversion(parts, token),
        "roles": ROLES,
    }
    return render(request, parts, t, "settings.html", status, **values, **shown)


async def _conversion(parts: Console, token: str) -> dict[str, Any]:
    """render-pdf's quota and usage of the tenant this year, and the backend its documents go to."""
    usage = await parts.services.json("render-pdf", "/usage", token)
    backend = await parts.services.json("render-pdf", f"/backends/{quote(usage['tenant_id'])}", token)
    return {"usage": usage, "backend": backend, "backends": BACKENDS}


@router.get("/settings")
async def settings_page(request: Request, parts: Parts, person: AdminPerson, t: Labels) -> Response:
    return await _page(request, parts, person, t, saved=request.query_params.get("saved"))


@router.post("/settings/accounts/{account_id}/test")
async def test_account(request: Request, parts: Parts, person: AdminPerson, t: Labels, account_id: str) -> Response:
    """Connect and log in as a send would, sending nothing (dispatch's test); the answer shown on the page."""
    path = f"/accounts/{quote(account_id)}/test"
    result = (await parts.services.call("dispatch", "POST", path, person.access_token)).json()
    account = await parts.services.json("dispatch", f"/accounts/{quote(account_id)}", person.access_token)
    return await _page(request, parts, person, t, tested={"account": account, **result})


def account_form(account: dict[str, Any] | None) -> dict[str, Any]:
    if account is None:
        return {name: "" for name in ACCOUNT_FIELDS} | {
            "port": "587",
            "tls": "starttls",
            "verify_certificate": True,
            "connections": "4",
            "rate_per_s": "",
            "daily_cap": "",
            "shared_with_roles": list(SHARED_ROLES),
        }
    shown = {name: "" if account.get(name) is None else str(account[name]) for name in ACCOUNT_FIELDS}
    limits = {
        name: "" if account["limits"].get(name) is None else str(account["limits"][name]) for name in LIMIT_FIELDS
    }
    return (
        shown
        | limits
        | {
            "password": "",
            "verify_certificate": account["verify_certificate"],
            "shared_with_roles": account["shared_with_roles"],
        }
    )


def account_request(form: dict[str, Any], stored: dict[str, Any] | None) -> dict[str, Any]:
    """dispatch's AccountIn from the form; an empty password keeps the stored one; what the form does not show
    of a stored account is kept."""
    body: dict[str, Any] = {}
    if stored is not None:
        body = {"shared_with_users": stored["shared_with_users"], "pause_after_errors": stored["pause_after_errors"]}
    body |= {
        "name": form["name"],
        "host": form["host"].strip(),
        "port": form["port"] or 587,
        "tls": form["tls"],
        "verify_certificate": bool(form["verify_certificate"]),
        "login": form["login"] or None,
        "from_address": form["from_address"].strip(),
        "from_name": form["from_name"] or None,
        "reply_to": form["reply_to"].strip() or None,
        "limits": {name: form[name] or None for name in LIMIT_FIELDS if form[name] or name != "connections"},
        "shared_with_roles": form["shared_with_roles"],
    }
    if form["password"]:
        body["password"] = form["password"]
    return body


async def _account_form_data(request: Request) -> dict[str, Any]:
    given = await request.form()
    form: dict[str, Any] = {name: str(given.get(name) or "") for name in (*ACCOUNT_FIELDS, *LIMIT_FIELDS)}
    form["verify_certificate"] = given.get("verify_certificate") == "on"
    form["shared_with_roles"] = [role for role in given.getlist("shared_with_roles") if role in SHARED_ROLES]
    return form


def _account_page(
    request: Request,
    parts: Console,
    t: Labels,
    form: dict[str, Any],
    account: dict[str, Any] | None,
    status: int = 200,
    problem: str | None = None,
) -> Response:
    return render(
        request,
        parts,
        t,
        "account.html",
        status,
        form=form,
        account=account,
        problem=problem,
        tls_modes=TLS_MODES,
        shared_roles=SHARED_ROLES,
    )


@router.get("/settings/accounts/new")
async def new_account(request: Request, parts: Parts, person: AdminPerson, t: Labels) -> Response:
    return _account_page(request, parts, t, account_form(None), None)


@router.get("/settings/accounts/{account_id}")
async def account_page(request: Request, parts: Parts, person: AdminPerson, t: Labels, account_id: str) -> Response:
    account = await parts.services.json("dispatch", f"/accounts/{quote(account_id)}", person.access_token)
    return _account_page(request, parts, t, account_form(account), account)


async def _save_account(
    request: Request, parts: Console, person: Session, t: Labels, account_id: str | None
) -> Response:
    token = person.access_token
    form = await _account_form_data(request)
    stored = None
    if account_id is not None:
        stored = await parts.services.json("dispatch", f"/accounts/{quote(account_id)}", token)
    try:
        body = account_request(form, stored)
        if account_id is None:
            await parts.services.call("dispatch", "POST", "/accounts", token, json=body)
        else:
            await parts.services.call("dispatch", "PUT", f"/accounts/{quote(account_id)}", token, json=body)
    except ServiceRefused as refused:
        return _account_page(request, parts, t, form | {"password": ""}, stored, 422, refused.detail)
    return RedirectResponse("/settings?saved=account", status_code=303)


@router.post("/settings/accounts/new")
async def create_account(request: Request, parts: Parts, person: AdminPerson, t: Labels) -> Response:
    return await _save_account(request, parts, person, t, None)


@router.post("/settings/accounts/{account_id}")
async def edit_account(request: Request, parts: Parts, person: AdminPerson, t: Labels, account_id: str) -> Response:
    return await _save_account(request, parts, person, t, account_id)


@router.post("/settings/accounts/{account_id}/delete")
async def delete_account(parts: Parts, person: AdminPerson, account_id: str) -> Response:
    await parts.services.call("dispatch", "DELETE", f"/accounts/{quote(account_id)}", person.access_token)
    return RedirectResponse("/settings?saved=account_deleted", status_code=303)


@router.post("/settings/tenant")
async def save_tenant(
    request: Request,
    parts: Parts,
    person: AdminPerson,
    t: Labels,
    language: Annotated[str, Form()],
    combined_page_limit: Annotated[str, Form()] = "",
    email_enabled: Annotated[str | None, Form()] = None,
    sender_prefix: Annotated[str, Form()] = "",
) -> Response:
    """merge's and dispatch's settings of the tenant: each read first and put back whole, changed where the
    form says (a PUT replaces, and a field the form does not show would be reset)."""
    token = person.access_token
    tenant = await parts.services.json("merge", "/settings", token)
    sending = await parts.services.json("dispatch", "/settings/sending", token)
    tenant |= {"language": language}
    if combined_page_limit.strip():
        tenant["combined_page_limit"] = combined_page_limit.strip()
    sending = {name: sending[name] for name in ("email_enabled", "sender_prefix")}
    sending |= {"email_enabled": email_enabled == "on", "sender_prefix": sender_prefix.strip() or None}
    try:
        await parts.services.call("merge", "PUT", "/settings", token, json=tenant)
        await parts.services.call("dispatch", "PUT", "/settings/sending", token, json=sending)
    except ServiceRefused as refused:
        problem = t("error.service", service=refused.service, detail=refused.detail)
        return await _page(request, parts, person, t, 422, problem=problem)
    return RedirectResponse("/settings?saved=tenant", status_code=303)


@router.post("/settings/api-keys")
async def create_api_key(
    request: Request,
    parts: Parts,
    person: AdminPerson,
    t: Labels,
    name: Annotated[str, Form()],
    roles: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """The key is shown this once, on the page that answers (the service keeps only its hash)."""
    body = {"name": name, "roles": roles or []}
    try:
        made = (await parts.services.call("template", "POST", "/api-keys", person.access_token, json=body)).json()
    except ServiceRefused as refused:
        return await _page(
            request, parts, person, t, 422, problem=t("error.service", service=refused.service, detail=refused.detail)
        )
    return await _page(request, parts, person, t, new_key=made)


@router.post("/settings/api-keys/{key_id}/revoke")
async def revoke_api_key(parts: Parts, person: AdminPerson, key_id: str) -> Response:
    await parts.services.call("template", "DELETE", f"/api-keys/{quote(key_id)}", person.access_token)
    return RedirectResponse("/settings?saved=api_key_revoked", status_code=303)


@router.post("/settings/conversion")
async def save_conversion(
    request: Request,
    parts: Parts,
    person: AdminPerson,
    t: Labels,
    yearly_limit: Annotated[str, Form()] = "",
    backend: Annotated[str, Form()] = "",
    gotenberg_url: Annotated[str, Form()] = "",
    overflow: Annotated[str, Form()] = "",
    overflow_url: Annotated[str, Form()] = "",
) -> Response:
    """The tenant's yearly quota of LibreOffice conversions, its backend and the paid converter past the quota
    (render-pdf). An empty quota is no limit; an empty backend, the service's default."""
    token = person.access_token
    tenant = (await parts.services.json("render-pdf", "/usage", token))["tenant_id"]
    try:
        limit = int(yearly_limit) if yearly_limit.strip() else None
    except ValueError:
        return await _page(request, parts, person, t, 422, problem=f"yearly_limit: {yearly_limit!r} is not a number")
    try:
        await parts.services.call("render-pdf", "PUT", f"/quotas/{quote(tenant)}", token, json={"yearly_limit": limit})
        chosen = {"backend": backend or None, "gotenberg_url": gotenberg_url.strip() or None}
        await parts.services.call("render-pdf", "PUT", f"/backends/{quote(tenant)}", token, json=chosen)
        past = {"backend": overflow or None, "gotenberg_url": overflow_url.strip() or None}
        await parts.services.call("render-pdf", "PUT", f"/backends/{quote(tenant)}/overflow", token, json=past)
    except ServiceRefused as refused:
        problem = t("error.service", service=refused.service, detail=refused.detail)
        return await _page(request, parts, person, t, 422, problem=problem)
    return RedirectResponse("/settings?saved=conversion", status_code=303)
