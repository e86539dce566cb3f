"""Sending accounts over HTTP. The password goes in, sealed; it never comes out, in an answer or a log."""

import asyncio
import hashlib
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from fastapi.exceptions import RequestValidationError
from publipost_auth import Principal, PrincipalKind, Role, require
from publipost_outbound import OutboundRefused
from pydantic import BaseModel, Field, SecretStr, field_validator
from pymongo.errors import DuplicateKeyError

from .accounts import NoSealKey
from .context import Context, DispatchContext
from .domain import (
    SENDING_ROLES,
    Account,
    AccountInvalid,
    InvalidAddress,
    TlsMode,
    UnsafeHeader,
    check_address,
    check_header,
    check_tls,
)
from .model import AccountLimits, SendingAccount
from .sealing import SealBroken
from .smtp import SmtpHostRefused, SmtpRefused, SmtpUnavailable

router = APIRouter(prefix="/accounts", tags=["sending accounts"])
# Admins manage the tenant's accounts and see them all; an operator sees the accounts shared with them, to
# choose the one a dispatch sends with, and manages a personal account of their own. Viewers do not see
# accounts: an account's host and login are half of what sending as the tenant takes.
AccountUser = Annotated[Principal, Depends(require(Role.ADMIN, Role.OPERATOR))]


class LimitsIn(BaseModel):
    rate_per_s: int | None = Field(default=None, ge=1, le=10_000, description="Messages per second, all replicas.")
    connections: int = Field(default=4, ge=1, le=100, description="Open connections at once, all replicas.")
    daily_cap: int | None = Field(default=None, ge=1, description="Messages per day (UTC); the dispatch pauses past it.")


class AccountIn(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    host: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\[\]-]+$")]
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    tls: TlsMode = TlsMode.STARTTLS
    verify_certificate: bool = True
    login: str | None = Field(default=None, max_length=254)
    password: SecretStr | None = Field(default=None, description="Kept as it is when omitted on an update.")
    from_address: str
    from_name: str | None = Field(default=None, max_length=200)
    reply_to: str | None = None
    limits: LimitsIn = Field(default_factory=LimitsIn)
    pause_after_errors: int | None = Field(default=None, ge=1, description="SMTP errors before a dispatch pauses.")
    personal: bool = Field(
        default=False,
        description="The caller's own account: only they send through it, and only they change it. Set when "
        "the account is made; an operator may make one, an admin any account.",
    )
    shared_with_users: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=1000, description="People (their `sub`, see GET /users) who send through it."
    )
    shared_with_roles: list[Literal["operator", "integrator"]] = Field(
        default_factory=lambda: sorted(SENDING_ROLES),
        description="Roles whose holders send through it; integrator includes integrating systems on the bus.",
    )

    @field_validator("from_address", "reply_to")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else _checked(check_address, "address", value)

    @field_validator("from_name", "login")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        return None if value is None else _checked(check_header, "value", value)


def _checked(check: Any, field: str, value: str) -> str:
    try:
        return check(field, value)
    except (InvalidAddress, UnsafeHeader) as exc:
        raise ValueError(str(exc).partition(": ")[2] or str(exc)) from exc


class AccountView(BaseModel):
    id: str
    name: str
    host: str
    port: int
    tls: TlsMode
    verify_certificate: bool
    login: str | None
    password_set: bool = Field(description="Whether a password is stored; the password itself is never shown.")
    from_address: str
    from_name: str | None
    reply_to: str | None
    limits: LimitsIn
    pause_after_errors: int | None
    personal: bool
    owner: str | None = Field(description="Whose personal account it is (their `sub`).")
    shared_with_users: list[str]
    shared_with_roles: list[str]
    version: int
    created_at: datetime
    updated_at: datetime


class ConnectionTest(BaseModel):
    ok: bool
    reply: str | None = None
    error: str | None = None


def _view(account: SendingAccount) -> AccountView:
    sharing = account.sharing
    return AccountView(
        id=account.id,
        name=account.name,
        host=account.host,
        port=account.port,
        tls=account.tls,
        verify_certificate=account.verify_certificate,
        login=account.login,
        password_set=bool(account.password_sealed),
        from_address=account.from_address,
        from_name=account.from_name,
        reply_to=account.reply_to,
        limits=LimitsIn(
            rate_per_s=account.limits.rate_per_s,
            connections=account.limits.connections,
            daily_cap=account.limits.daily_cap,
        ),
        pause_after_errors=account.pause_after_errors,
        personal=sharing.owner is not None,
        owner=sharing.owner,
        shared_with_users=sorted(sharing.users),
        shared_with_roles=sorted(sharing.roles),
        version=account.version,
        created_at=account.created_at,
        updated_at=account.updated_at,
    )


def _personal_id(tenant_id: str, subject: str) -> str:
    """One personal account per person: its id is theirs, so a second is refused by the database itself."""
    return "personal-" + hashlib.sha256(f"{tenant_id}/{subject}".encode()).hexdigest()[:20]


def _sees(caller: Principal, account: SendingAccount) -> bool:
    """Admins see every account of the tenant; anyone else those they may send through."""
    return Role.ADMIN in caller.roles or account.sharing.allows(caller.requester())


def _may_change(caller: Principal, account: SendingAccount) -> None:
    """A personal account is its owner's to change; the tenant's accounts are the admins'."""
    owner = account.owner
    if owner is not None and owner != caller.subject:
        raise HTTPException(403, detail="a personal account is changed by its owner only")
    if owner is None and Role.ADMIN not in caller.roles:
        raise HTTPException(403, detail="the tenant's sending accounts are changed by an admin")


async def _stored(
    ctx: DispatchContext, tenant_id: str, account_id: str, body: AccountIn, before: SendingAccount | None
) -> SendingAccount:
    """The account as the request makes it (a new one, or the next version of `before`), password sealed."""
    now = datetime.now(UTC)
    account = SendingAccount(
        id=account_id,
        tenant_id=tenant_id,
        **body.model_dump(exclude={"password", "personal", "limits"}),
        limits=AccountLimits(**body.limits.model_dump()),
        password_sealed=before.password_sealed if before else None,
        version=(before.version + 1) if before else 1,
        created_at=before.created_at if before else now,
        updated_at=now,
    )
    try:
        check_tls(body.host, body.tls, ctx.settings.plain_smtp_hosts)
        if before is not None:
            before.check_password_kept(account, body.password is not None)
        await _check_host(ctx, body.host, body.port)
    except AccountInvalid as exc:
        raise RequestValidationError([{"loc": ("body", exc.field), "msg": exc.message, "type": "value_error"}]) from exc
    try:
        if body.password is not None:
            account.password_sealed = ctx.accounts.seal(body.password.get_secret_value(), tenant_id, account_id)
        elif account.password_sealed:
            account.password_sealed = ctx.accounts.reseal(account.password_sealed, tenant_id, account_id)
    except NoSealKey as exc:
        raise HTTPException(503, detail=str(exc)) from exc
    except SealBroken as exc:
        raise HTTPException(409, detail=f"password: the stored one cannot be opened ({exc}); give it again") from exc
    return account


async def _check_host(ctx: DispatchContext, host: str, port: int) -> None:
    """The server must be one this service may reach on a tenant's behalf (publipost_outbound)."""
    try:
        await ctx.senders.outbound.check(host, port)
    except OutboundRefused as exc:
        raise AccountInvalid("host", str(exc)) from exc


async def _account(ctx: DispatchContext, caller: Principal, account_id: str) -> SendingAccount:
    account = await ctx.accounts.repository.get(caller.tenant_id, account_id)
    if account is None or not _sees(caller, account):
        raise HTTPException(404, detail=f"no sending account {account_id!r} for you in this tenant")
    return account


@router.post("", response_model=AccountView, status_code=201)
async def create_account(ctx: Context, caller: AccountUser, body: AccountIn) -> AccountView:
    """An account of the tenant, shared with the roles and people it names (admins), or the caller's own
    (`personal`: operators and admins, one each)."""
    if body.personal:
        if caller.kind not in (PrincipalKind.USER, PrincipalKind.ANONYMOUS):
            raise HTTPException(403, detail="personal: a personal account belongs to a person, not to an API key")
        if body.shared_with_users:
            raise HTTPException(422, detail="shared_with_users: a personal account is not shared")
        account_id = _personal_id(caller.tenant_id, caller.subject)
    elif Role.ADMIN not in caller.roles:
        raise HTTPException(403, detail="an admin makes the tenant's shared accounts; for your own, set personal")
    else:
        account_id = str(uuid.uuid4())
    account = await _stored(ctx, caller.tenant_id, account_id, body, None)
    if body.personal:
        account.make_personal(caller.subject)
    try:
        await ctx.accounts.repository.add(account)
    except DuplicateKeyError:
        raise HTTPException(409, detail=f"you have a personal account already: {account_id}") from None
    return _view(account)


@router.get("", response_model=list[AccountView])
async def list_accounts(ctx: Context, caller: AccountUser) -> list[AccountView]:
    """The accounts the caller may send through (an admin: every account of the tenant)."""
    accounts = await ctx.accounts.repository.all_of(caller.tenant_id)
    return [_view(account) for account in accounts if _sees(caller, account)]


@router.get("/{account_id}", response_model=AccountView)
async def get_account(ctx: Context, caller: AccountUser, account_id: str) -> AccountView:
    return _view(await _account(ctx, caller, account_id))


@router.put("/{account_id}", response_model=AccountView)
async def replace_account(ctx: Context, caller: AccountUser, account_id: str, body: AccountIn) -> AccountView:
    """Replace the account's settings (`personal` stays as it was made); sends already under way finish on
    the old connection."""
    before = await _account(ctx, caller, account_id)
    _may_change(caller, before)
    account = await _stored(ctx, caller.tenant_id, account_id, body, before)
    if before.owner is not None:
        account.make_personal(before.owner)
    if not await ctx.accounts.repository.replace(account):
        raise HTTPException(404, detail=f"no sending account {account_id!r} for you in this tenant")
    ctx.accounts.forget(caller.tenant_id, account_id)
    return _view(account)


@router.delete("/{account_id}", status_code=204)
async def delete_account(ctx: Context, caller: AccountUser, account_id: str) -> None:
    """By its owner for a personal account; by an admin for any."""
    account = await _account(ctx, caller, account_id)
    if Role.ADMIN not in caller.roles:
        _may_change(caller, account)
    if not await ctx.accounts.repository.delete(caller.tenant_id, account_id):
        raise HTTPException(404, detail=f"no sending account {account_id!r} for you in this tenant")
    ctx.accounts.forget(caller.tenant_id, account_id)


@router.post("/{account_id}/test", response_model=ConnectionTest)
async def test_connection(ctx: Context, caller: AccountUser, account_id: str) -> ConnectionTest:
    """Connect, upgrade to TLS and log in as a send would, without sending anything.

    The answer comes after `account_test_s` exactly, and every way of not reaching an SMTP server (refused,
    closed, filtered, silent, not SMTP, TLS failing) gets the same words: the test cannot be used to map
    which ports answer where. What an SMTP server says (a login refused) is shown as it is."""
    answer_at = time.monotonic() + ctx.settings.account_test_s
    stored = await _account(ctx, caller, account_id)
    _may_change(caller, stored)  # logging in with its password is for whoever may change it
    try:
        account = ctx.accounts.opened(stored)
    except NoSealKey as exc:
        raise HTTPException(503, detail=str(exc)) from exc
    except SealBroken as exc:
        raise HTTPException(409, detail=f"password: the stored one cannot be opened ({exc}); give it again") from exc
    pool = ctx.senders.probe_pool(account)
    try:
        result = ConnectionTest(ok=True, reply=await asyncio.wait_for(pool.probe(), ctx.settings.account_test_s))
    except SmtpHostRefused as exc:
        result = ConnectionTest(ok=False, error=str(exc))
    except SmtpRefused as exc:
        result = ConnectionTest(ok=False, error=f"the server at {account.host}:{account.port} refused: {exc}")
    except (SmtpUnavailable, TimeoutError):
        result = ConnectionTest(ok=False, error=_no_smtp_server(account, ctx.settings.account_test_s))
    finally:
        await asyncio.shield(pool.close())
    await asyncio.sleep(max(0.0, answer_at - time.monotonic()))
    return result


def _no_smtp_server(account: Account, within_s: float) -> str:
    return (
        f"no SMTP server at {account.host}:{account.port} let this service log in within {within_s:g}s "
        "(refused, closed, filtered, silent, TLS failed or not SMTP)"
    )
