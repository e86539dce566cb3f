"""What every page of the console shares: its components, the signed-in person, the language, rendering."""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from publipost_auth import Issuer, TokenVerifier

from .catalog import Catalog
from .session import SESSION_COOKIE, Seal, Session
from .settings import ConsoleSettings
from .upstream import Services

HERE = Path(__file__).parent


@dataclass
class Console:
    """The console's components, made once (app.build)."""

    settings: ConsoleSettings
    seal: Seal
    services: Services
    issuer: Issuer
    verifier: TokenVerifier
    templates: Environment


def templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def console(request: Request) -> Console:
    return request.app.state.console


class NotSignedIn(Exception):
    """No live session: the person is sent to sign in, then back to where they were."""


def signed_in(request: Request, parts: Annotated[Console, Depends(console)]) -> Session:
    session = parts.seal.session(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise NotSignedIn()
    return session


def catalog(request: Request) -> Catalog:
    return Catalog.for_request(request.headers.get("accept-language"))


Parts = Annotated[Console, Depends(console)]
Person = Annotated[Session, Depends(signed_in)]
Labels = Annotated[Catalog, Depends(catalog)]


def render(
    request: Request, parts: Console, t: Catalog, name: str, status_code: int = 200, **values: Any
) -> HTMLResponse:
    session = parts.seal.session(request.cookies.get(SESSION_COOKIE))
    page = parts.templates.get_template(name).render(
        t=t, lang=t.language, person=session, poll_s=parts.settings.poll_interval_s, request=request, **values
    )
    return HTMLResponse(page, status_code=status_code)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"
