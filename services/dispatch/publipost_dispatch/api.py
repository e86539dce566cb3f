"""Dispatches over HTTP: preview, start (checked up front), progress, resume after a pause, and the
immediate send of one document."""

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from publipost_auth import Admin, OutcomeReader, Principal, Reader, Starter
from publipost_contracts import DispatchRequested, DispatchResumed, EmailsRequested, deterministic_id
from publipost_http import IndexCursor, correlation_id
from publipost_refusals import NotFound
from pydantic import BaseModel, Field, field_validator, model_validator

from . import manual
from .accounts import DEFAULT_ACCOUNT_ID, NoSealKey
from .context import Context, DispatchContext
from .domain import (
    FINAL,
    NOT_SENT,
    PENDING,
    Addressing,
    DeliveryState,
    EmailText,
    InvalidAddress,
    UnsafeHeader,
    check_address,
    check_header,
    too_many_recipients,
)
from .emails import what_it_emails
from .fan_out import what_it_sends
from .model import Delivery, Dispatch, NotPaused, TenantSending
from .preview import Asked, preview

router = APIRouter(tags=["dispatches"])
settings_router = APIRouter(prefix="/settings/sending", tags=["settings"])
SUBJECT = (
    "Empty: the e-mail template's, else the document type's preset (\"Your invoice {document_number}\"), else "
    '"Your document {document_number}"; never the mailing\'s name.'
)
CorrelationId = Annotated[str, Depends(correlation_id)]


def _addresses(field: str, values: list[str]) -> list[str]:
    try:
        return [check_address(field, v) for v in values]
    except (InvalidAddress, UnsafeHeader) as exc:
        raise ValueError(str(exc)) from exc


class _Addressed(BaseModel):
    """A request that names recipients: every address, and the subject, are checked (and refused with their
    field) on the way in."""

    @field_validator("to", "cc", "bcc", check_fields=False)
    @classmethod
    def _list(cls, values: list[str]) -> list[str]:
        return _addresses("address", values)

    @field_validator("reply_to", check_fields=False)
    @classmethod
    def _reply_to(cls, value: str | None) -> str | None:
        return None if value is None else _addresses("reply_to", [value])[0]

    @field_validator("subject", check_fields=False)
    @classmethod
    def _subject(cls, value: str) -> str:
        try:
            return check_header("subject", value)
        except UnsafeHeader as exc:
            raise ValueError(str(exc)) from exc


class DispatchIn(_Addressed):
    dispatch_id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1, max_length=128)
    mailing_id: str
    account_id: str | None = None
    email_template_id: str | None = None
    subject: str = Field(default="", max_length=998, description=SUBJECT)
    body: str = "Please find your document attached.\n"
    to: list[str] = Field(default_factory=list, description="Fixed recipients instead of each document's own.")
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list)
    reply_to: str | None = None
    separate_sends: bool = False
    copy_to_sender: bool = False
    document_type: str | None = Field(
        default=None, max_length=64, description="Also picks the format each recipient wants it in (directory)."
    )
    correspondence_type: str | None = Field(
        default=None, max_length=64, description="Each document goes to the recipient's contact for it (directory)."
    )
    document_ids: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=10_000,
        description="Only these documents of the mailing; the mailing is then not regrouped (the others may go later).",
    )


class EmailsIn(_Addressed):
    """A plain e-mail, nothing attached, to every recipient of a directory segment."""

    email_id: str = Field(
        default_factory=lambda: str(uuid.uuid4()),
        min_length=1,
        max_length=128,
        description="Idempotency key, and the id of the dispatch that follows it (GET /dispatches/{id}).",
    )
    segment_id: str = Field(min_length=1, max_length=128, description="The recipient directory's segment.")
    subject: str = Field(
        default="",
        max_length=998,
        description="Required unless email_template_id: {client_name}, {customer_number}, {date} and the "
        "recipient's fields and attributes ({inspection_due}); no {document_number}, there is no document.",
    )
    body: str = Field(default="", description="Required unless email_template_id; filled as the subject is.")
    email_template_id: str | None = None
    account_id: str | None = None
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list)
    reply_to: str | None = None
    separate_sends: bool = False
    copy_to_sender: bool = False
    correspondence_type: str | None = Field(
        default=None, max_length=64, description="Each e-mail goes to the recipient's contact for it (directory)."
    )

    @model_validator(mode="after")
    def _says_something(self) -> "EmailsIn":
        if self.email_template_id is None:
            missing = [name for name in ("subject", "body") if not getattr(self, name).strip()]
            if missing:
                raise ValueError(f"{missing[0]}: give a subject and a body, or an email_template_id")
        return self


def _check_recipient_count(body: "DispatchIn | EmailsIn | SendIn", limit: int) -> None:
    to = [] if isinstance(body, EmailsIn) else body.to  # a plain e-mail's are the segment's recipients
    over = too_many_recipients(to, body.cc, body.bcc, limit)
    if over is not None:
        field, message = over
        raise HTTPException(422, detail=[{"loc": ["body", field], "msg": message, "type": "too_many_recipients"}])


class Accepted(BaseModel):
    dispatch_id: str


class UnsendableView(BaseModel):
    document_id: str
    document_number: str
    reason: str


class PreviewView(BaseModel):
    documents: int
    will_send: int
    without_address: int = Field(
        description="Documents that would fail: no PDF, a subject or body its record cannot fill, or no address."
    )
    unsendable: list[UnsendableView]
    attachments_bytes: int = Field(description="The PDFs that would go, added up.")
    estimated_bytes: int = Field(description="What the e-mails would weigh on the wire, copies included.")


class DispatchView(BaseModel):
    dispatch_id: str
    mailing_id: str | None = Field(description="The mailing sent; none for a plain e-mail.")
    segment_id: str | None = Field(default=None, description="The segment a plain e-mail goes to.")
    account_id: str | None = None
    status: str
    reason: str | None = None
    errors: int = 0
    total: int
    queued: int
    sending: int
    sent: int
    failed: int
    created_at: datetime
    completed_at: datetime | None = None


class DeliveryView(BaseModel):
    document_id: str
    index: int
    document_number: str
    state: str
    to: list[str] = []
    cc: list[str] = []
    bcc: list[str] = []
    subject: str | None = None
    reason: str | None = None
    smtp_reply: str | None = None
    message_id: str | None = None
    attempts: int
    finished_at: datetime | None = None
    address_rule: str | None = Field(
        default=None, description="The directory's rule that gave `to`: record, directory, contact, billing, main."
    )


class DeliveryPage(BaseModel):
    items: list[DeliveryView]
    next_after: int | None


def _event(caller: Principal, correlation: str, body: DispatchIn) -> DispatchRequested:
    return DispatchRequested(
        tenant_id=caller.tenant_id, correlation_id=correlation, requested_by=caller.requester(), **body.model_dump()
    )


@router.post("/dispatches", response_model=Accepted, status_code=202)
async def start_dispatch(ctx: Context, caller: Starter, correlation: CorrelationId, body: DispatchIn) -> Accepted:
    """Checked now (a DOCX-only mailing, an unknown account or template is refused with the reason), then
    sent in the background; follow it on GET /dispatches/{dispatch_id}."""
    _check_recipient_count(body, ctx.settings.max_recipients_per_send)
    event = _event(caller, correlation, body)
    await what_it_sends(event, ctx)  # a Refusal answers 404, 409 or 422 (publipost_http)
    await ctx.bus.publish(event)
    return Accepted(dispatch_id=event.dispatch_id)


@router.post("/emails", response_model=Accepted, status_code=202)
async def start_emails(ctx: Context, caller: Starter, correlation: CorrelationId, body: EmailsIn) -> Accepted:
    """A plain e-mail to the segment's recipients, checked now (an unknown segment, account or template is a
    404, a variable a recipient's record cannot fill a 422), then sent in the background as a dispatch of
    id `email_id`: follow it on GET /dispatches/{dispatch_id}."""
    _check_recipient_count(body, ctx.settings.max_recipients_per_send)
    event = EmailsRequested(
        tenant_id=caller.tenant_id, correlation_id=correlation, requested_by=caller.requester(), **body.model_dump()
    )
    await what_it_emails(event, ctx)  # a Refusal answers 404, 409 or 422 (publipost_http)
    await ctx.bus.publish(event)
    return Accepted(dispatch_id=event.email_id)


@router.post("/dispatches/preview", response_model=PreviewView)
async def preview_dispatch(ctx: Context, caller: Starter, correlation: CorrelationId, body: DispatchIn) -> PreviewView:
    """What the dispatch would send, sending nothing."""
    _check_recipient_count(body, ctx.settings.max_recipients_per_send)
    event = _event(caller, correlation, body)
    mailing, text, _ = await what_it_sends(event, ctx)
    copies = 1
    if body.separate_sends:
        copies = max(1, len(body.to)) + len(body.cc) + len(body.bcc) + int(body.copy_to_sender)
    asked = Asked(text, body.document_type, body.to, copies, body.correspondence_type, body.document_ids)
    result = await preview(ctx, caller.tenant_id, correlation, mailing, asked)
    return PreviewView(
        documents=result.documents,
        will_send=result.will_send,
        without_address=len(result.unsendable),
        unsendable=[UnsendableView(**u.__dict__) for u in result.unsendable],
        attachments_bytes=result.attachments_bytes,
        estimated_bytes=result.estimated_bytes,
    )


class UnknownDispatch(NotFound):
    def __init__(self, dispatch_id: str) -> None:
        super().__init__(f"no dispatch {dispatch_id!r} for this tenant")


async def _dispatch(ctx: DispatchContext, tenant_id: str, dispatch_id: str) -> Dispatch:
    dispatch = await ctx.dispatches.find(tenant_id, dispatch_id)
    if dispatch is None:
        raise UnknownDispatch(dispatch_id)
    return dispatch


async def _view(ctx: DispatchContext, dispatch: Dispatch) -> DispatchView:
    counts = {state.value: await ctx.deliveries.count(dispatch.id, (state,)) for state in DeliveryState}
    return DispatchView(
        dispatch_id=dispatch.dispatch_id,
        mailing_id=dispatch.mailing_id,
        segment_id=dispatch.segment_id,
        account_id=dispatch.account_id,
        status=dispatch.status,
        reason=dispatch.reason,
        total=dispatch.total,
        errors=dispatch.errors,
        created_at=dispatch.created_at,
        completed_at=dispatch.completed_at,
        **counts,
    )


@router.get("/dispatches/{dispatch_id}", response_model=DispatchView)
async def get_dispatch(ctx: Context, caller: OutcomeReader, dispatch_id: str) -> DispatchView:
    """Progress counted per document, not estimated; a paused dispatch says why."""
    return await _view(ctx, await _dispatch(ctx, caller.tenant_id, dispatch_id))


@router.post("/dispatches/{dispatch_id}/resume", response_model=DispatchView)
async def resume_dispatch(ctx: Context, caller: Starter, dispatch_id: str) -> DispatchView:
    """A paused dispatch goes on with the documents still pending; its error count starts again at zero."""
    dispatch = await _dispatch(ctx, caller.tenant_id, dispatch_id)
    dispatch.resume()
    resumed = await ctx.dispatches.resume(dispatch)
    if resumed is None:  # another resume was first
        raise NotPaused(await _dispatch(ctx, caller.tenant_id, dispatch_id))
    await ctx.bus.publish(
        DispatchResumed(
            event_id=deterministic_id("dispatch.resumed", resumed.id, resumed.resumptions),
            tenant_id=caller.tenant_id,
            correlation_id=resumed.correlation_id,
            dispatch_id=dispatch_id,
            mailing_id=resumed.mailing_id,
            segment_id=resumed.segment_id,
            resumption=resumed.resumptions,
        )
    )
    return await _view(ctx, resumed)


@router.get("/dispatches/{dispatch_id}/deliveries", response_model=DeliveryPage)
async def list_deliveries(
    ctx: Context,
    caller: OutcomeReader,
    dispatch_id: str,
    outcome: Literal["pending", "final", "sent", "failed", "uncertain", "not_sent"] | None = None,
    after: IndexCursor = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> DeliveryPage:
    dispatch = await _dispatch(ctx, caller.tenant_id, dispatch_id)
    states = {
        None: (*PENDING, *FINAL),
        "pending": PENDING,
        "final": FINAL,
        "sent": (DeliveryState.SENT,),
        "failed": (DeliveryState.FAILED,),
        "uncertain": (DeliveryState.UNCERTAIN,),
        "not_sent": NOT_SENT,
    }[outcome]
    items = [_delivery_view(d) async for d in ctx.deliveries.in_state(dispatch.id, states, after=after, limit=limit)]
    return DeliveryPage(items=items, next_after=items[-1].index if len(items) == limit else None)


# --- immediate send -------------------------------------------------------------------------


class SendIn(_Addressed):
    mailing_id: str
    document_id: str
    to: list[str] = Field(min_length=1)
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list)
    subject: str = Field(default="", max_length=998, description=SUBJECT)
    body: str = "Please find your document attached.\n"
    copy_to_sender: bool = False
    separate_sends: bool = False
    reply_to: str | None = None
    account_id: str | None = None
    document_type: str | None = Field(default=None, max_length=64)


class SentView(DeliveryView):
    send_id: str


@router.post("/sends", response_model=SentView, status_code=202)
async def send_document(
    ctx: Context, caller: Starter, correlation: CorrelationId, body: SendIn, response: Response
) -> SentView:
    """Send one document now, in the background. The answer is the recorded send, queued; `GET
    /sends/{send_id}` (the Location) follows it to sent with the server's reply, failed with the reason,
    or uncertain. Either way it is in the history."""
    _check_recipient_count(body, ctx.settings.max_recipients_per_send)
    (await ctx.sending.get(caller.tenant_id)).check_email_enabled()
    try:
        account = await ctx.accounts.for_requester(caller.tenant_id, body.account_id, caller.requester())
        request = manual.ManualSend(
            mailing_id=body.mailing_id,
            document_id=body.document_id,
            addressing=Addressing(
                to=body.to,
                cc=body.cc,
                bcc=body.bcc,
                sender_copy=account.from_address if body.copy_to_sender else None,
                separate=body.separate_sends,
            ),
            text=EmailText.given(body.subject, body.body, body.document_type),
            account_id=body.account_id,
            reply_to=body.reply_to,
            document_type=body.document_type,
        )
        stored = await manual.send_soon(ctx, caller.tenant_id, correlation, request)
    except NoSealKey as exc:
        raise HTTPException(503, detail=str(exc)) from exc
    response.headers["Location"] = f"/sends/{stored.id}"
    return SentView(send_id=stored.id, **_delivery_view(stored).model_dump())


@router.get("/sends/{send_id}", response_model=SentView)
async def sent_document(ctx: Context, caller: OutcomeReader, send_id: str) -> SentView:
    """An immediate send as recorded: queued (or being sent), sent, failed or uncertain."""
    stored = await ctx.deliveries.get(send_id)
    if stored is None or stored.tenant_id != caller.tenant_id or stored.kind != "manual":
        raise HTTPException(404, detail=f"send_id: no immediate send {send_id!r} for this tenant")
    return SentView(send_id=stored.id, **_delivery_view(stored).model_dump())


def _delivery_view(delivery: Delivery) -> DeliveryView:
    return DeliveryView(
        document_id=delivery.document_id,
        index=delivery.index,
        document_number=delivery.document_number,
        state=delivery.state,
        to=delivery.to,
        cc=delivery.cc,
        bcc=delivery.bcc,
        subject=delivery.subject,
        reason=delivery.reason,
        smtp_reply=delivery.smtp_reply,
        message_id=delivery.message_id,
        attempts=delivery.attempts,
        finished_at=delivery.finished_at,
        address_rule=delivery.address_rule,
    )


# --- the tenant's sending choices ---------------------------------------------------------


class SendingIn(BaseModel):
    email_enabled: bool = Field(
        default=True,
        description="Off: dispatches, previews and immediate sends are refused (409); a dispatch already "
        "sending goes on.",
    )
    sender_prefix: str | None = Field(
        default=None,
        description="E-mails through the default account go from <sender_prefix>@<the platform's sender domain> "
        "(PUBLIPOST_SENDER_DOMAIN); none: from the service's own sender.",
    )


class SendingView(SendingIn):
    sender: str | None = Field(description="The default account's From address for this tenant, when it is its own.")


def _sending_view(ctx: DispatchContext, chosen: TenantSending) -> SendingView:
    return SendingView(
        email_enabled=chosen.email_enabled,
        sender_prefix=chosen.sender_prefix,
        sender=chosen.sender(ctx.settings.sender_domain),
    )


@settings_router.get("", response_model=SendingView)
async def get_sending(ctx: Context, caller: Reader) -> SendingView:
    return _sending_view(ctx, await ctx.sending.get(caller.tenant_id))


@settings_router.put("", response_model=SendingView)
async def put_sending(ctx: Context, caller: Admin, body: SendingIn) -> SendingView:
    chosen = TenantSending(id=caller.tenant_id, email_enabled=body.email_enabled)
    chosen.choose_prefix(body.sender_prefix, ctx.settings.sender_domain)  # Invalid: 422 naming sender_prefix
    await ctx.sending.save(chosen)
    ctx.accounts.forget(caller.tenant_id, DEFAULT_ACCOUNT_ID)  # this replica sends from it at once
    return _sending_view(ctx, chosen)
