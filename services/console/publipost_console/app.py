"""The console's wiring: settings, the issuer, the services' clients, the pages, the errors as pages."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import quote

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from publipost_auth import Issuer, IssuerUnavailable, TokenVerifier
from publipost_http import BodyLimit, CachedCheck, health_router, upload_limit
from publipost_http.access_log import AccessLog
from publipost_logging import configure_logging
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import admin, campaigns, directory, history, login, mailings, recipients, sending, starting, template_screens
from .catalog import Catalog
from .origin import comes_from_the_console
from .session import SESSION_COOKIE, Seal
from .settings import ConsoleSettings
from .upstream import ServiceRefused, Services, ServiceUnreachable, SignedOut
from .web import HERE, Console, NotSignedIn, is_htmx, render, templates

# The forms that carry a file, passed on to the services (which apply their own limits too).
UPLOAD_ROUTES = (
    "POST /mailings/new",
    "POST /directory/import",
    "POST /templates",
    "POST /templates/{template_id}/versions",
)


def build(settings: ConsoleSettings | None = None, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or ConsoleSettings()  # type: ignore[call-arg]  # read from the environment
    issuer = Issuer(settings)
    parts = Console(
        settings=settings,
        seal=Seal(settings.session_key.get_secret_value(), settings.session_max_age_s),
        services=Services(settings, transport),
        issuer=issuer,
        verifier=TokenVerifier(settings, issuer),
        templates=templates(),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await parts.services.close()

    app = FastAPI(title="Publipost console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = parts

    async def issuer_answers() -> bool:
        return bool(await parts.issuer.metadata())

    app.include_router(health_router({"issuer": CachedCheck(issuer_answers)}))
    # starting before mailings: /mailings/new is not a mailing's id.
    for router in (
        login.router,
        starting.router,
        mailings.router,
        sending.router,
        recipients.router,
        history.router,
        campaigns.router,
        admin.router,
        directory.router,
        template_screens.router,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def sign_in_again(request: Request) -> Response:
        target = "/login?next=" + quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        if is_htmx(request):  # a fragment asked in the background: the whole page goes to the sign-in
            return Response(status_code=204, headers={"HX-Redirect": target})
        response = RedirectResponse(target, status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, _: NotSignedIn) -> Response:
        return sign_in_again(request)

    @app.exception_handler(admin.NotAdmin)
    async def not_admin(request: Request, _: admin.NotAdmin) -> Response:
        t = Catalog.for_request(request.headers.get("accept-language"))
        return render(request, parts, t, "error.html", 403, problem=t("error.admins_only"))

    @app.exception_handler(StarletteHTTPException)
    async def no_such_page(request: Request, exc: StarletteHTTPException) -> Response:
        """A page the console does not have, as a page in the person's language (not FastAPI's JSON)."""
        if exc.status_code != 404:
            return await http_exception_handler(request, exc)
        t = Catalog.for_request(request.headers.get("accept-language"))
        return render(request, parts, t, "error.html", 404, problem=t("error.no_page"))

    @app.exception_handler(SignedOut)
    async def signed_out(request: Request, _: SignedOut) -> Response:
        return sign_in_again(request)

    @app.exception_handler(ServiceRefused)
    async def refused(request: Request, exc: ServiceRefused) -> Response:
        t = Catalog.for_request(request.headers.get("accept-language"))
        problem = t("error.service", service=exc.service, detail=exc.detail)
        return render(request, parts, t, "error.html", exc.status if exc.status < 500 else 502, problem=problem)

    @app.exception_handler(ServiceUnreachable)
    @app.exception_handler(IssuerUnavailable)
    async def unreachable(request: Request, exc: Exception) -> Response:
        t = Catalog.for_request(request.headers.get("accept-language"))
        service = exc.service if isinstance(exc, ServiceUnreachable) else "identity"
        return render(request, parts, t, "error.html", 503, problem=t("error.unreachable", service=service))

    @app.middleware("http")
    async def same_origin_only(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        console_url = settings.public_url or str(request.base_url)
        if not comes_from_the_console(request.method, dict(request.headers), console_url):
            t = Catalog.for_request(request.headers.get("accept-language"))
            return render(request, parts, t, "error.html", 403, problem=t("error.cross_origin"))
        return await call_next(request)

    uploads = upload_limit(settings.max_upload_bytes)
    app.add_middleware(
        BodyLimit,
        default_bytes=settings.max_body_bytes,
        route_bytes={route: uploads for route in UPLOAD_ROUTES},
    )
    app.add_middleware(AccessLog)
    return app


def main() -> None:
    settings = ConsoleSettings()  # type: ignore[call-arg]  # read from the environment
    configure_logging(settings.service_name, settings.log_level)
    uvicorn.run(
        build(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
    )


if __name__ == "__main__":
    main()
