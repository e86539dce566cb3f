"""Sending accounts over HTTP. The password goes in, sealed; it never comes out, in an answer or a log."""

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.exceptions import RequestValidationError
from publipost_auth import Admin, Principal, Role, require
from publipost_outbound import OutboundRefused
from pydantic import BaseModel, Field, SecretStr, field_validator

from .accounts import NoSealKey
from .context import Context, DispatchContext
from .domain import (
    Account,
    AccountInvalid,
    InvalidAddress,
    TlsMode,
    UnsafeHeader,
    check_address,
    check_header,
    check_password_kept,
    check_tls,
)
from .sealing import SealBroken
from .smtp import SmtpHostRefused, SmtpRefused, SmtpUnavailable

router = APIRouter(prefix="/accounts", tags=["sending accounts"])
# Admins manage accounts; operators also see them, to choose the one a dispatch sends with. Viewers do not:
# an account's host and login are half of what sending as the tenant takes.
AccountReader = Annotated[Principal, Depends(require(Role.ADMIN, Role.OPERATOR))]


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
    version: int
    created_at: datetime
    updated_at: datetime


class ConnectionTest(BaseModel):
    ok: bool
    reply: str | None = None
    error: str | None = None


def _view(doc: dict[str, Any]) -> AccountView:
    return AccountView(
        id=doc["_id"],
        password_set=bool(doc.get("password_sealed")),
        **{k: doc.get(k) for k in AccountView.model_fields if k not in ("id", "password_set")},
    )


async def _document(
    ctx: DispatchContext, tenant_id: str, account_id: str, body: AccountIn, before: dict[str, Any] | None
) -> dict[str, Any]:
    now = datetime.now(UTC)
    doc = {
        "_id": account_id,
        "tenant_id": tenant_id,
        **body.model_dump(exclude={"password"}),
        "password_sealed": before.get("password_sealed") if before else None,
        "version": (before["version"] + 1) if before else 1,
        "created_at": before["created_at"] if before else now,
        "updated_at": now,
    }
    try:
        check_tls(body.host, body.tls, ctx.settings.plain_smtp_hosts)
        check_password_kept(before or {}, doc, body.password is not None)
        await _check_host(ctx, body.host, body.port)
    except AccountInvalid as exc:
        raise RequestValidationError([{"loc": ("body", exc.field), "msg": exc.message, "type": "value_error"}]) from exc
    try:
        if body.password is not None:
            doc["password_sealed"] = ctx.accounts.seal(body.password.get_secret_value(), tenant_id, account_id)
        elif doc["password_sealed"]:
            doc["password_sealed"] = ctx.accounts.reseal(doc["password_sealed"], tenant_id, account_id)
    except NoSealKey as exc:
        raise HTTPException(503, detail=str(exc)) from exc
    except SealBroken as exc:
        raise HTTPException(409, detail=f"password: the stored one cannot be opened ({exc}); give it again") from exc
    return doc


async def _check_host(ctx: DispatchContext, host: str, port: int) -> None:
    """The server must be one this service may reach on a tenant's behalf (publipost_outbound)."""
    try:
        await ctx.senders.outbound.check(host, port)
    except OutboundRefused as exc:
        raise AccountInvalid("host", str(exc)) from exc


async def _account(ctx: DispatchContext, tenant_id: str, account_id: str) -> dict[str, Any]:
    doc = await ctx.accounts.repository.get(tenant_id, account_id)
    if doc is None:
        raise HTTPException(404, detail=f"no sending account {account_id!r} for this tenant")
    return doc


@router.post("", response_model=AccountView, status_code=201)
async def create_account(ctx: Context, caller: Admin, body: AccountIn) -> AccountView:
    doc = await _document(ctx, caller.tenant_id, str(uuid.uuid4()), body, None)
    await ctx.accounts.repository.add(doc)
    return _view(doc)


@router.get("", response_model=list[AccountView])
async def list_accounts(ctx: Context, caller: AccountReader) -> list[AccountView]:
    return [_view(doc) for doc in await ctx.accounts.repository.all_of(caller.tenant_id)]


@router.get("/{account_id}", response_model=AccountView)
async def get_account(ctx: Context, caller: AccountReader, account_id: str) -> AccountView:
    return _view(await _account(ctx, caller.tenant_id, account_id))


@router.put("/{account_id}", response_model=AccountView)
async def replace_account(ctx: Context, caller: Admin, account_id: str, body: AccountIn) -> AccountView:
    """Replace the account's settings; sends already under way finish on the old connection."""
    doc = await _document(ctx, caller.tenant_id, account_id, body, await _account(ctx, caller.tenant_id, account_id))
    if not await ctx.accounts.repository.replace(doc):
        raise HTTPException(404, detail=f"no sending account {account_id!r} for this tenant")
    ctx.accounts.forget(caller.tenant_id, account_id)
    return _view(doc)


@router.delete("/{account_id}", status_code=204)
async def delete_account(ctx: Context, caller: Admin, account_id: str) -> None:
    if not await ctx.accounts.repository.delete(caller.tenant_id, account_id):
        raise HTTPException(404, detail=f"no sending account {account_id!r} for this tenant")
    ctx.accounts.forget(caller.tenant_id, account_id)


@router.post("/{account_id}/test", response_model=ConnectionTest)
async def test_connection(ctx: Context, caller: Admin, account_id: str) -> ConnectionTest:
    """Connect, upgrade to TLS and log in as a send would, without sending anything.

    The answer comes after `account_test_s` exactly, and every way of not reaching an SMTP server (refused,
    closed, filtered, silent, not SMTP, TLS failing) gets the same words: the test cannot be used to map
    which ports answer where. What an SMTP server says (a login refused) is shown as it is."""
    answer_at = time.monotonic() + ctx.settings.account_test_s
    try:
        account = ctx.accounts.from_document(await _account(ctx, caller.tenant_id, account_id))
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
