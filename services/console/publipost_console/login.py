"""Sign-in with the issuer (OpenID Connect authorization code flow with PKCE), sign-out."""

import secrets
from typing import Annotated
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from publipost_auth import AuthError, IssuerUnavailable
from publipost_auth.pkce import new_verifier, s256_challenge

from .screens import safe_next
from .session import LOGIN_COOKIE, LOGIN_MAX_AGE_S, SESSION_COOKIE, LoginState, Session
from .web import Console, Labels, Parts, render

router = APIRouter(include_in_schema=False)


def _callback_url(request: Request, parts: Console) -> str:
    if parts.settings.public_url:
        return parts.settings.public_url.rstrip("/") + "/callback"
    return str(request.url_for("callback"))


def _secure(request: Request, parts: Console) -> bool:
    """Cookies go over HTTPS only when the console is reached by HTTPS (always, behind an ingress with TLS)."""
    return (parts.settings.public_url or str(request.base_url)).startswith("https://")


@router.get("/login")
async def login(request: Request, parts: Parts, next: Annotated[str | None, Query()] = None) -> Response:
    try:
        metadata = await parts.issuer.metadata()
    except httpx.HTTPError as exc:
        raise IssuerUnavailable(f"the issuer's discovery document: {exc}") from exc
    state = LoginState(secrets.token_urlsafe(24), new_verifier(), _callback_url(request, parts), safe_next(next))
    query = {
        "response_type": "code",
        "client_id": parts.settings.console_client_id,
        "redirect_uri": state.redirect_uri,
        "scope": "openid profile email",
        "state": state.state,
        "code_challenge": s256_challenge(state.verifier),
        "code_challenge_method": "S256",
    }
    endpoint = parts.settings.auth_authorize_url or metadata["authorization_endpoint"]
    response = RedirectResponse(f"{endpoint}?{urlencode(query)}", status_code=303)
    response.set_cookie(
        LOGIN_COOKIE,
        parts.seal.seal(state),
        max_age=LOGIN_MAX_AGE_S,
        httponly=True,
        samesite="lax",  # sent back on the issuer's top-level redirect to /callback
        secure=_secure(request, parts),
    )
    return response


@router.get("/callback", name="callback")
async def callback(
    request: Request,
    parts: Parts,
    t: Labels,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> Response:
    started = parts.seal.login_state(request.cookies.get(LOGIN_COOKIE))
    if error is not None:
        return _failed(request, parts, t, error_description or error)
    if started is None or state is None or not secrets.compare_digest(started.state, state) or not code:
        return _failed(request, parts, t, t("login.state"))
    try:
        token = await _exchange(parts, started, code)
        claims = await parts.verifier.verify(token)
        person = parts.verifier.principal(claims, acting_for=None)
    except (AuthError, IssuerUnavailable, httpx.HTTPError, KeyError, ValueError) as exc:
        return _failed(request, parts, t, str(exc) or type(exc).__name__)
    session = Session(
        access_token=token,
        expires_at=int(claims["exp"]),
        name=person.name or person.email or person.subject,
        email=person.email,
        roles=sorted(role.value for role in person.roles),
    )
    response = RedirectResponse(started.next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        parts.seal.seal(session),
        max_age=min(parts.settings.session_max_age_s, max(0, session.expires_at - int(parts.seal.now()))),
        httponly=True,
        samesite="lax",
        secure=_secure(request, parts),
    )
    response.delete_cookie(LOGIN_COOKIE)
    return response


async def _exchange(parts: Console, started: LoginState, code: str) -> str:
    form = {
        "grant_type": "authorization_code",
        "client_id": parts.settings.console_client_id,
        "code": code,
        "redirect_uri": started.redirect_uri,
        "code_verifier": started.verifier,
    }
    answer = await parts.issuer.request("POST", await parts.issuer.token_url(), data=form, check=False)
    if answer.is_error:
        body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
        raise ValueError(body.get("error_description") or body.get("error") or f"HTTP {answer.status_code}")
    return answer.json()["access_token"]


def _failed(request: Request, parts: Console, t: Labels, reason: str) -> Response:
    response = render(request, parts, t, "signed_out.html", status_code=400, problem=t("login.failed", reason=reason))
    response.delete_cookie(LOGIN_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request, parts: Parts, t: Labels) -> Response:
    response = render(request, parts, t, "signed_out.html", signed_out=True)
    response.delete_cookie(SESSION_COOKIE)
    return response
