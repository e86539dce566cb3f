"""`publipost login | logout | whoami`: a person's token from the issuer (OAuth password grant of the public
client), or a token or API key given as it is, kept in the configuration folder for the other commands."""

from typing import Annotated, Any

import typer

from .api import CommandFailed, ServiceClient
from .profile import Credentials
from .session import Session


def _token_endpoint(session: Session, issuer: ServiceClient) -> str:
    if session.profile.token_url:
        return session.profile.token_url
    discovery = issuer.get("/.well-known/openid-configuration")
    endpoint = discovery.get("token_endpoint") if isinstance(discovery, dict) else None
    if not endpoint:
        raise CommandFailed(f"the issuer at {issuer.base_url} names no token_endpoint (set PUBLIPOST_TOKEN_URL)")
    return str(endpoint)


def password_grant(session: Session, user: str, password: str) -> str:
    """An access token of `user`, from the issuer's token endpoint."""
    profile = session.profile
    issuer = ServiceClient("issuer", profile.issuer_url, None, session.transport)
    try:
        form = {"grant_type": "password", "client_id": profile.client_id, "username": user, "password": password}
        answer = issuer.call("POST", _token_endpoint(session, issuer), data=form)
    finally:
        issuer.close()
    if not isinstance(answer, dict) or "access_token" not in answer:
        raise CommandFailed("the issuer's answer holds no access_token")
    return str(answer["access_token"])


def who(session: Session, credential: str | None = None) -> dict[str, Any]:
    """Who the services take the credential for (the template service's GET /me)."""
    with session.client("template", credential) as template:
        me: dict[str, Any] = template.get("/me")
    return me


def _described(me: dict[str, Any]) -> str:
    return f"{me['subject']} (tenant {me['tenant_id']}, roles {', '.join(me['roles']) or 'none'})"


def login(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Argument(help="A user of the issuer (asked when not given).")] = None,
    password: Annotated[str | None, typer.Option(help="Asked, unechoed, when not given.")] = None,
    token: Annotated[
        str | None, typer.Option(help="Store this bearer token or API key (pp_…) instead of asking the issuer.")
    ] = None,
) -> None:
    """Log in: the token is kept in ~/.config/publipost/credentials.json (readable by you only)."""
    session: Session = ctx.obj
    if token is not None:
        me = who(session, token)  # a credential the services refuse is not kept
        session.store.save(Credentials.of(token, me["subject"]))
        session.out.print(f"logged in as {_described(me)}")
        return
    user = user or typer.prompt("user")
    password = password if password is not None else typer.prompt("password", hide_input=True)
    stored = Credentials.of(password_grant(session, user, password), user)
    session.store.save(stored)
    until = f"; the token expires at {stored.expires_at:%Y-%m-%d %H:%M} UTC" if stored.expires_at else ""
    session.out.print(f"logged in as {user} at {session.profile.issuer_url}{until}")


def logout(ctx: typer.Context) -> None:
    """Forget the stored credential."""
    session: Session = ctx.obj
    session.out.print("logged out" if session.store.clear() else "not logged in")


def whoami(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="The service's answer, as JSON.")] = False
) -> None:
    """Who the services take you for: tenant, subject, roles."""
    session: Session = ctx.obj
    me = who(session)
    if as_json:
        session.print_json(me)
        return
    session.out.print(_described(me))
    stored = session.store.load() if not session.env_credential else None
    if stored is not None and stored.expires_at is not None:
        session.out.print(f"token expires at {stored.expires_at:%Y-%m-%d %H:%M} UTC")
