"""The development issuer: a tiny OpenID Connect provider so the local stack needs no external one.

It serves what Publipost needs of an issuer and nothing more:
- `/.well-known/openid-configuration` (discovery) and `/jwks.json` (its public key);
- `/token`: `client_credentials` for the services and integrating systems (client id and secret, HTTP Basic
  or form fields), `password` for people (the public client `publipost-cli`, or any other client), and
  `authorization_code` with PKCE for the web console;
- `/authorize`: the authorization code flow's login form (RFC 6749 §4.1 with RFC 7636's S256 challenge,
  required), for public clients with registered redirect URIs (the console, `publipost-console`).

Tokens are ES256 JWTs with `iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti`, `azp`, `roles` and, unless the
caller is a service, `tenant_id` (a person's also `preferred_username` and `email`). The signing key and the
clients' and users' secrets are made once per run folder (`make up` does it, in `.local/issuer/`) and kept, so
tokens survive a restart of the issuer.

    python -m publipost_localstack.dev_issuer serve --port 8107 --dir .local/issuer
"""

import argparse
import base64
import hmac
import html
import json
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from joserfc import jwt
from joserfc.jwk import ECKey
from publipost_auth.pkce import verifier_matches

KEY_FILE = "signing-key.json"
CLIENTS_FILE = "clients.json"
ALGORITHM = "ES256"
DEFAULT_AUDIENCE = "publipost"
DEFAULT_TOKEN_TTL_S = 900
DEV_TENANT = "demo"
PUBLIC_CLIENT = "publipost-cli"
CONSOLE_CLIENT = "publipost-console"
# The console wherever it runs on this machine: any port of a loopback redirect URI matches (RFC 8252 §7.3).
CONSOLE_REDIRECT_URIS = ["http://127.0.0.1/callback", "http://localhost/callback"]
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
CODE_TTL_S = 60  # an authorization code is exchanged at once by the client it was given to (RFC 6749 §4.1.2)
# What another service may do when it calls one: everything but administration, for the tenant it names.
SERVICE_ROLES = ["service", "operator", "viewer", "integrator"]
DEV_USERS = {
    "admin": ["admin", "operator"],
    "operator": ["operator"],
    "viewer": ["viewer"],
    "integrator": ["integrator"],
}


def client_id_of(service: str) -> str:
    return f"publipost-{service}"


def _write_private(path: Path, data: Any) -> None:
    """Written whole (a reader never sees half a file) and readable by its owner only."""
    partial = path.with_name(f".{path.name}.part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2)
    partial.rename(path)


def prepare(directory: Path, services: Iterable[str], service_secret: str | None = None) -> dict[str, Any]:
    """The signing key and the registry of clients and users, made in `directory` when missing; a service
    added since is given its client. `service_secret`: every service's client secret, when something else
    hands the same secret to the services (docker compose); else each has a random one. Returns the registry."""
    directory.mkdir(parents=True, exist_ok=True)
    key_path = directory / KEY_FILE
    if not key_path.exists():
        key = ECKey.generate_key("P-256", {"alg": ALGORITHM, "use": "sig"}, auto_kid=True)
        _write_private(key_path, key.as_dict(private=True))
    clients_path = directory / CLIENTS_FILE
    registry: dict[str, Any] = {"clients": {}, "users": {}}
    if clients_path.exists():
        registry = json.loads(clients_path.read_text())
    before = json.dumps(registry, sort_keys=True)
    clients = registry.setdefault("clients", {})
    for service in services:
        client = clients.setdefault(
            client_id_of(service), {"secret": secrets.token_urlsafe(24), "roles": SERVICE_ROLES, "tenant_id": None}
        )
        if service_secret is not None:
            client["secret"] = service_secret
    clients.setdefault(
        "demo-integrator", {"secret": secrets.token_urlsafe(24), "roles": ["integrator"], "tenant_id": DEV_TENANT}
    )
    clients.setdefault(PUBLIC_CLIENT, {"public": True})
    clients.setdefault(CONSOLE_CLIENT, {"public": True, "redirect_uris": CONSOLE_REDIRECT_URIS})
    users = registry.setdefault("users", {})
    for name, roles in DEV_USERS.items():
        users.setdefault(name, {"password": secrets.token_urlsafe(12), "tenant_id": DEV_TENANT, "roles": roles})
    if json.dumps(registry, sort_keys=True) != before:
        _write_private(clients_path, registry)
    return registry


def load_key(directory: Path) -> ECKey:
    return ECKey.import_key(json.loads((directory / KEY_FILE).read_text()))


def load_registry(directory: Path) -> dict[str, Any]:
    return json.loads((directory / CLIENTS_FILE).read_text())


@dataclass(frozen=True)
class Authorization:
    """What an authorization code stands for until its client exchanges it."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    username: str
    expires_at: float


class DevIssuer:
    def __init__(
        self,
        url: str,
        key: ECKey,
        registry: dict[str, Any],
        audience: str = DEFAULT_AUDIENCE,
        token_ttl_s: int = DEFAULT_TOKEN_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.registry = registry
        self.audience = audience
        self.token_ttl_s = token_ttl_s
        self.clock = clock
        # Codes live in this process only: the development issuer is one process, and a code lives a minute.
        self.codes: dict[str, Authorization] = {}

    def issue(self, subject: str, client_id: str, roles: list[str], tenant_id: str | None, **extra: Any) -> str:
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": subject,
            "aud": self.audience,
            "azp": client_id,
            "iat": now,
            "nbf": now,
            "exp": now + self.token_ttl_s,
            "jti": str(uuid.uuid4()),
            "roles": roles,
            **extra,
        }
        if tenant_id is not None:
            claims["tenant_id"] = tenant_id
        return jwt.encode({"alg": ALGORITHM, "kid": self.key.kid, "typ": "JWT"}, claims, self.key)

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/jwks.json",
            "token_endpoint": f"{self.url}/token",
            "authorization_endpoint": f"{self.url}/authorize",
            "grant_types_supported": ["client_credentials", "password", "authorization_code"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "response_types_supported": ["code", "token"],
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "claims_supported": ["sub", "iss", "aud", "exp", "nbf", "iat", "jti", "azp", "roles", "tenant_id", "email"],
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def token(self, form: dict[str, str], authorization: str | None) -> JSONResponse:
        """The token endpoint (RFC 6749 §4.3, §4.4; errors as §5.2 says)."""
        client_id, secret = _client_of(form, authorization)
        client = self.registry["clients"].get(client_id or "")
        if client is None or not (client.get("public") or _same(secret, client.get("secret"))):
            return _oauth_error(401, "invalid_client", "unknown client or wrong secret")
        grant = form.get("grant_type")
        if grant == "client_credentials":
            if client.get("public"):
                return _oauth_error(400, "unauthorized_client", "a public client cannot use client_credentials")
            token = self.issue(client_id, client_id, client["roles"], client.get("tenant_id"))
        elif grant == "password":
            user = self.registry["users"].get(form.get("username", ""))
            if user is None or not _same(form.get("password"), user["password"]):
                return _oauth_error(400, "invalid_grant", "unknown user or wrong password")
            token = self.person_token(form["username"], client_id)
        elif grant == "authorization_code":
            authorization = self.codes.pop(form.get("code", ""), None)  # used once, whatever comes next
            problem = _code_problem(authorization, client_id, form, self.clock())
            if problem is not None:
                return _oauth_error(400, "invalid_grant", problem)
            assert authorization is not None  # _code_problem said so
            token = self.person_token(authorization.username, client_id)
        else:
            return _oauth_error(
                400,
                "unsupported_grant_type",
                f"grant_type {grant!r}: client_credentials, password or authorization_code",
            )
        body = {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl_s}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    def person_token(self, name: str, client_id: str) -> str:
        user = self.registry["users"][name]
        # Where the notices of what the user started go: the local stack's mail capture takes any address.
        email = user.get("email", f"{name}@example.test")
        return self.issue(
            f"user:{name}", client_id, user["roles"], user["tenant_id"], preferred_username=name, email=email
        )

    def authorize_problem(self, query: dict[str, str]) -> str | None:
        """Why the client or its redirect URI cannot be trusted: then the browser is not sent back to it
        (RFC 6749 §4.1.2.1), the form shows the problem instead."""
        client = self.registry["clients"].get(query.get("client_id", ""))
        if client is None or not client.get("redirect_uris"):
            return f"unknown client {query.get('client_id')!r}, or one without redirect URIs"
        if not _redirect_registered(query.get("redirect_uri", ""), client["redirect_uris"]):
            return f"redirect_uri {query.get('redirect_uri')!r} is not registered for {query['client_id']!r}"
        return None

    def login_form(self, query: dict[str, str], error: str | None = None, status: int = 200) -> HTMLResponse:
        if (problem := self.authorize_problem(query)) is not None:
            return HTMLResponse(_page("Sign-in refused", f"<p role='alert'>{html.escape(problem)}</p>"), 400)
        kept = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(query.get(name, ""))}">'
            for name in AUTHORIZE_PARAMS
        )
        alert = f'<p role="alert" class="error">{html.escape(error)}</p>' if error else ""
        body = f"""{alert}
<form method="post" action="/authorize">{kept}
  <p><label for="username">User name</label><br><input id="username" name="username" autocomplete="username" required autofocus></p>
  <p><label for="password">Password</label><br><input id="password" name="password" type="password" autocomplete="current-password" required></p>
  <p><button type="submit">Sign in</button></p>
</form>"""
        return HTMLResponse(_page("Publipost development issuer: sign in", body), status)

    def authorize(self, form: dict[str, str]) -> Response:
        """The login form's answer: back to the client with a code, or the form again saying what is wrong."""
        if self.authorize_problem(form) is not None:
            return self.login_form(form)
        back = form["redirect_uri"]
        state = {"state": form["state"]} if form.get("state") else {}
        if form.get("response_type") != "code":
            return _redirect(back, error="unsupported_response_type", **state)
        if form.get("code_challenge_method") != "S256" or not form.get("code_challenge"):
            return _redirect(back, error="invalid_request", error_description="PKCE with S256 is required", **state)
        user = self.registry["users"].get(form.get("username", ""))
        if user is None or not _same(form.get("password"), user["password"]):
            return self.login_form(form, "Unknown user or wrong password.", status=401)
        code = secrets.token_urlsafe(32)
        self.codes = {c: a for c, a in self.codes.items() if a.expires_at > self.clock()}  # the expired go
        self.codes[code] = Authorization(
            form["client_id"], back, form["code_challenge"], form["username"], self.clock() + CODE_TTL_S
        )
        return _redirect(back, code=code, **state)

    def app(self) -> FastAPI:
        app = FastAPI(title="Publipost development issuer", docs_url=None, redoc_url=None)

        @app.get("/authorize")
        async def authorize_form(request: Request) -> HTMLResponse:
            return self.login_form(dict(request.query_params))

        @app.post("/authorize")
        async def authorize(request: Request) -> Response:
            form = {key: value for key, value in (await request.form()).items() if isinstance(value, str)}
            return self.authorize(form)

        @app.get("/.well-known/openid-configuration")
        async def discovery() -> dict[str, Any]:
            return self.metadata()

        @app.get("/jwks.json")
        async def jwks() -> dict[str, Any]:
            return self.jwks()

        @app.post("/token")
        async def token(request: Request) -> JSONResponse:
            form = {key: value for key, value in (await request.form()).items() if isinstance(value, str)}
            return self.token(form, request.headers.get("authorization"))

        @app.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

        return app


def _client_of(form: dict[str, str], authorization: str | None) -> tuple[str | None, str | None]:
    if authorization and authorization.lower().startswith("basic "):
        try:
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, None
        return client_id, secret
    return form.get("client_id"), form.get("client_secret")


AUTHORIZE_PARAMS = ("response_type", "client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method")


def _redirect_registered(uri: str, registered: list[str]) -> bool:
    """Exactly a registered URI, except that a loopback one matches on any port (RFC 8252 §7.3)."""
    if uri in registered:
        return True
    given = urlsplit(uri)
    if given.hostname not in LOOPBACK_HOSTS:
        return False
    host = f"[{given.hostname}]" if ":" in given.hostname else given.hostname
    return given._replace(netloc=host).geturl() in registered


def _code_problem(
    authorization: Authorization | None, client_id: str | None, form: dict[str, str], now: float
) -> str | None:
    """Why a code cannot be exchanged (RFC 6749 §4.1.3, RFC 7636 §4.6), or None."""
    if authorization is None:
        return "unknown or already used code"
    if authorization.expires_at <= now:
        return "the code has expired"
    if authorization.client_id != client_id:
        return "the code was given to another client"
    if authorization.redirect_uri != form.get("redirect_uri"):
        return "redirect_uri differs from the one the code was asked with"
    if not verifier_matches(form.get("code_verifier"), authorization.code_challenge):
        return "code_verifier does not match the code_challenge"
    return None


def _redirect(uri: str, **params: str) -> RedirectResponse:
    joiner = "&" if urlsplit(uri).query else "?"
    return RedirectResponse(f"{uri}{joiner}{urlencode(params)}", status_code=303)


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>{html.escape(title)}</h1>
{body}
</main></body></html>"""


def _same(given: str | None, expected: str | None) -> bool:
    return given is not None and expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="publipost-dev-issuer"'
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=headers)


def user_token(issuer_url: str, directory: Path, user: str) -> str:
    """A token of one of the development users, asked of the running issuer as a person's tool would."""
    password = load_registry(directory)["users"][user]["password"]
    form = {"grant_type": "password", "client_id": PUBLIC_CLIENT, "username": user, "password": password}
    response = httpx.post(f"{issuer_url}/token", data=form, timeout=5)
    response.raise_for_status()
    return response.json()["access_token"]


def signed_token(directory: Path, issuer_url: str, tenant_id: str, roles: Iterable[str], subject: str) -> str:
    """A token for a person of any tenant, signed with the issuer's own key without asking it: the local
    stack's tools (benchmarks, test harnesses) act for tenants the issuer has no users of. Development only:
    whoever can read the key in the issuer's folder can do as much."""
    return build(directory, issuer_url).issue(subject, "publipost-localstack", sorted(roles), tenant_id)


def build(
    directory: Path, url: str, audience: str = DEFAULT_AUDIENCE, token_ttl_s: int = DEFAULT_TOKEN_TTL_S
) -> DevIssuer:
    return DevIssuer(url, load_key(directory), load_registry(directory), audience, token_ttl_s)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m publipost_localstack.dev_issuer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the issuer (its key and clients made in --dir if missing)")
    serve.add_argument("--dir", type=Path, required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--url", help="the issuer's URL as tokens name it (default http://<host>:<port>)")
    serve.add_argument("--audience", default=DEFAULT_AUDIENCE)
    serve.add_argument("--token-ttl", type=int, default=DEFAULT_TOKEN_TTL_S, help="seconds a token lives")
    serve.add_argument("--services", default="", help="comma-separated services to give a client (make up does it)")
    serve.add_argument(
        "--service-secret-env",
        metavar="VARIABLE",
        help="the environment variable holding every service's client secret (docker compose), kept off the "
        "command line",
    )
    args = parser.parse_args()
    service_secret = os.environ[args.service_secret_env] if args.service_secret_env else None
    prepare(args.dir, [name for name in args.services.split(",") if name], service_secret)
    issuer = build(args.dir, args.url or f"http://{args.host}:{args.port}", args.audience, args.token_ttl)
    uvicorn.run(issuer.app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
