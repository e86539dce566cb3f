import uuid
from datetime import datetime, time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, HTTPException, Request
from publipost_addresses import control_character, invalid_addresses_message, parse_address_list
from publipost_auth import Operator, Reader
from publipost_http import Paging
from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field, TypeAdapter, field_validator, model_validator

from .clients import TargetsUnavailable
from .context import Context, SchedulerContext
from .domain import (
    Campaign,
    CampaignChanged,
    CampaignNotFound,
    CampaignStatus,
    CampaignTerms,
    Message,
    Occurrence,
    OccurrenceOutcome,
    Recurrence,
    RerunMerge,
    SendDocument,
)

router = APIRouter(prefix="/campaigns", tags=["campaigns"])
UPCOMING = 5
_CREDENTIALS = ("authorization", "x-api-key")  # the caller's, for dispatch to answer as it will at each send


def _addresses(value: Any) -> list[str]:
    """A list, or one comma-separated string; every address must be valid."""
    text = ",".join(value) if isinstance(value, list) else str(value or "")
    valid, invalid = parse_address_list(text)
    if invalid:
        raise ValueError(invalid_addresses_message(invalid))
    return valid


Addresses = Annotated[list[str], BeforeValidator(_addresses)]


class RecurrenceIn(BaseModel):
    kind: Literal["now", "once", "weekly", "monthly"]
    timezone: str = Field(default="Europe/Paris", description="IANA time zone the times are in.")
    at: AwareDatetime | None = Field(default=None, description="once: the date and time, with its offset.")
    weekday: int | None = Field(default=None, ge=0, le=6, description="weekly: 0 = Monday ... 6 = Sunday.")
    day: int | None = Field(default=None, ge=1, le=31, description="monthly: past the month's end means its last day.")
    time: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="weekly, monthly: HH:MM.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Paris)") from exc
        return value

    @model_validator(mode="after")
    def _what_the_kind_needs(self) -> "RecurrenceIn":
        needs = {"once": ("at",), "weekly": ("weekday", "time"), "monthly": ("day", "time"), "now": ()}[self.kind]
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.kind} recurrence needs {' and '.join(missing)}")
        return self

    def to_domain(self) -> Recurrence:
        wall = time.fromisoformat(self.time) if self.time else None
        return Recurrence(self.kind, self.timezone, self.at, self.weekday, self.day, wall)


class MergeRerunIn(BaseModel):
    template_id: str = Field(min_length=1, max_length=128)
    template_version: int | None = Field(default=None, ge=1)
    segment_id: str = Field(min_length=1, max_length=128, description="Recipients as they are at each occurrence.")
    custom_fields: dict[str, str] = Field(default_factory=dict)


class CampaignIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    document_type: str | None = Field(default=None, max_length=64)
    recurrence: RecurrenceIn
    catch_up: Literal["latest", "skip"] = Field(
        default="latest", description="After downtime: fire the latest missed occurrence once, or skip missed ones."
    )
    mailing_id: str | None = Field(default=None, max_length=128, description="The published mailing to send.")
    merge: MergeRerunIn | None = Field(default=None, description="Or: a merge to re-run at each occurrence.")
    recipients: Addresses = Field(default_factory=list, description="Fixed recipients (comma-separated or a list).")
    cc: Addresses = Field(default_factory=list)
    bcc: Addresses = Field(default_factory=list)
    reply_to: str | None = None
    subject: str = Field(default="", max_length=998, description="Empty: the document type's preset subject.")
    body: str = Field(default="Please find your document attached.\n")
    separate_sends: bool = False
    copy_to_sender: bool = False
    auto_increment_date: bool = Field(
        default=False,
        description="The document's date is the occurrence's: a re-run merge prints it, and the e-mail's {date} "
        "names it (a published mailing's too).",
    )
    account_id: str | None = Field(
        default=None, max_length=128, description="The sending account; dispatch's own SMTP server when absent."
    )
    email_template_id: str | None = Field(
        default=None, max_length=128, description="An e-mail template of the tenant: replaces subject and body."
    )

    @field_validator("subject")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if (character := control_character(value)) is not None:
            raise ValueError(f"a subject may not contain the control character {character}")
        return value

    @model_validator(mode="after")
    def _one_thing_to_send(self) -> "CampaignIn":
        if (self.mailing_id is None) == (self.merge is None):
            raise ValueError("give exactly one of mailing_id (a published mailing) or merge (a merge to re-run)")
        return self

    def to_terms(self) -> CampaignTerms:
        action: RerunMerge | SendDocument
        if self.merge is not None:
            action = RerunMerge(**self.merge.model_dump())
        else:
            assert self.mailing_id is not None
            action = SendDocument(mailing_id=self.mailing_id)
        message = self.model_dump(
            include={
                "cc",
                "bcc",
                "reply_to",
                "subject",
                "body",
                "separate_sends",
                "copy_to_sender",
                "account_id",
                "email_template_id",
            }
        )
        return CampaignTerms(
            name=self.name,
            document_type=self.document_type,
            recurrence=self.recurrence.to_domain(),
            catch_up=self.catch_up,
            action=action,
            message=Message(**message, to=self.recipients),
            auto_increment_date=self.auto_increment_date,
        )


class OccurrenceView(BaseModel):
    at: datetime
    idempotency_key: str
    announced_at: datetime | None
    dispatched_mailing_id: str | None = None
    outcome: OccurrenceOutcome = Field(description="announced (not ended yet), sent, or refused (see error).")
    sent: int | None = Field(default=None, description="Documents e-mailed, once its dispatch completed.")
    failed: int | None = Field(default=None, description="Documents not e-mailed (reasons in the send history).")
    error: str | None = None


class CampaignView(BaseModel):
    id: str
    name: str
    document_type: str | None
    recurrence: dict[str, Any]
    catch_up: str
    action: dict[str, Any]
    message: dict[str, Any]
    auto_increment_date: bool
    status: CampaignStatus
    next_run_at: datetime | None
    next_occurrences: list[datetime] = Field(description="The coming occurrences, in the campaign's time zone.")
    created_at: datetime
    occurrences: list[OccurrenceView] = Field(default_factory=list, description="Fired occurrences, newest first.")


# The recurrence, action and message are shown as they are stored (a wall time as "HH:MM").
_CAMPAIGN = TypeAdapter(Campaign)
_SHOWN_AS_STORED = {"recurrence", "action", "message"}


def _view(campaign: Campaign, occurrences: list[Occurrence] | None = None) -> CampaignView:
    return CampaignView(
        id=campaign.id,
        name=campaign.name,
        document_type=campaign.document_type,
        **_CAMPAIGN.dump_python(campaign, include=_SHOWN_AS_STORED),
        catch_up=campaign.catch_up,
        auto_increment_date=campaign.auto_increment_date,
        status=campaign.status,
        next_run_at=campaign.next_run_at,
        next_occurrences=campaign.upcoming(UPCOMING),
        created_at=campaign.created_at,
        occurrences=[
            OccurrenceView(
                at=o.at,
                idempotency_key=o.idempotency_key,
                announced_at=o.announced_at,
                dispatched_mailing_id=o.dispatched_mailing_id,
                outcome=o.outcome,
                sent=o.sent,
                failed=o.failed,
                error=o.error,
            )
            for o in occurrences or []
        ],
    )


def _not_in_the_past(body: CampaignIn, now: datetime) -> None:
    if body.recurrence.kind == "once" and body.recurrence.at is not None and body.recurrence.at < now:
        raise HTTPException(
            422,
            detail=[
                {"loc": ["body", "recurrence", "at"], "msg": "this time has passed; use kind 'now' to send at once"}
            ],
        )


async def _targets_of_the_tenant(ctx: SchedulerContext, tenant_id: str, body: CampaignIn, request: Request) -> None:
    """The mailing, template, e-mail template and segment a campaign names must be the caller's tenant's: each
    is looked up in the service that owns it, for that tenant. Another tenant's is refused as one that does not
    exist. The sending account must be one the caller may send through: dispatch answers, for the caller."""
    try:
        if body.mailing_id is not None and not await ctx.targets.has_mailing(tenant_id, body.mailing_id):
            raise HTTPException(404, detail=f"mailing_id: no mailing {body.mailing_id!r} for this tenant")
        if body.email_template_id is not None and not await ctx.targets.has_email_template(
            tenant_id, body.email_template_id
        ):
            raise HTTPException(
                404, detail=f"email_template_id: no e-mail template {body.email_template_id!r} for this tenant"
            )
        credentials = {name: request.headers[name] for name in _CREDENTIALS if name in request.headers}
        if body.account_id is not None and not await ctx.targets.has_account(tenant_id, body.account_id, credentials):
            raise HTTPException(404, detail=f"account_id: no sending account {body.account_id!r} for you in this tenant")
        if body.merge is not None:
            rerun = body.merge
            if not await ctx.targets.has_template(tenant_id, rerun.template_id, rerun.template_version):
                version = f" version {rerun.template_version}" if rerun.template_version else ""
                raise HTTPException(
                    404, detail=f"merge.template_id: no template {rerun.template_id!r}{version} for this tenant"
                )
            if not await ctx.targets.has_segment(tenant_id, rerun.segment_id):
                raise HTTPException(404, detail=f"merge.segment_id: no segment {rerun.segment_id!r} for this tenant")
    except TargetsUnavailable as exc:
        raise HTTPException(503, detail=f"what the campaign names cannot be checked now: {exc}") from exc


@router.post("", status_code=201, response_model=CampaignView)
async def create_campaign(ctx: Context, caller: Operator, body: CampaignIn, request: Request) -> CampaignView:
    now = ctx.clock()
    _not_in_the_past(body, now)
    await _targets_of_the_tenant(ctx, caller.tenant_id, body, request)
    campaign = Campaign.create(str(uuid.uuid4()), caller.tenant_id, body.to_terms(), caller.requester(), now)
    await ctx.campaigns.add(campaign)
    return _view(campaign)


class CampaignPage(BaseModel):
    """A page of campaigns, shaped as every numbered list of the product (mailings, templates)."""

    items: list[CampaignView]
    total: int
    page: int
    per_page: int


@router.get("", response_model=CampaignPage)
async def list_campaigns(ctx: Context, caller: Reader, paging: Paging) -> CampaignPage:
    """The tenant's campaigns, newest first."""
    items, total = await ctx.campaigns.page(caller.tenant_id, skip=paging.skip, limit=paging.per_page)
    return CampaignPage(items=[_view(c) for c in items], total=total, page=paging.page, per_page=paging.per_page)


@router.get("/{campaign_id}", response_model=CampaignView)
async def get_campaign(ctx: Context, caller: Reader, campaign_id: str) -> CampaignView:
    campaign = await _campaign(ctx, caller.tenant_id, campaign_id)
    return _view(campaign, await ctx.occurrences.of_campaign(campaign_id))


@router.put("/{campaign_id}", response_model=CampaignView)
async def edit_campaign(
    ctx: Context, caller: Operator, campaign_id: str, body: CampaignIn, request: Request
) -> CampaignView:
    """Replace what the campaign sends and when; its fired occurrences stay as they were."""
    campaign = await _campaign(ctx, caller.tenant_id, campaign_id)
    now = ctx.clock()
    _not_in_the_past(body, now)
    await _targets_of_the_tenant(ctx, caller.tenant_id, body, request)
    status = campaign.status
    # The campaign now sends as whoever edited it last.
    campaign.edit(body.to_terms(), caller.requester(), now)
    changed = [*CampaignTerms.__dataclass_fields__, "requested_by", "status", "next_run_at", "scheduled_at"]
    return _view(await _apply(ctx, campaign, status, *changed))


@router.post("/{campaign_id}/pause", response_model=CampaignView)
async def pause_campaign(ctx: Context, caller: Operator, campaign_id: str) -> CampaignView:
    """No occurrence fires from now on, until resumed."""
    campaign = await _campaign(ctx, caller.tenant_id, campaign_id)
    status = campaign.status
    campaign.pause()  # a CampaignConflict answers 409
    return _view(await _apply(ctx, campaign, status, "status"))


@router.post("/{campaign_id}/resume", response_model=CampaignView)
async def resume_campaign(ctx: Context, caller: Operator, campaign_id: str) -> CampaignView:
    """Firing goes on from the next occurrence; what was missed while paused is not replayed."""
    campaign = await _campaign(ctx, caller.tenant_id, campaign_id)
    status = campaign.status
    campaign.resume(ctx.clock())
    return _view(await _apply(ctx, campaign, status, "status", "next_run_at"))


@router.delete("/{campaign_id}", status_code=204)
async def delete_campaign(ctx: Context, caller: Operator, campaign_id: str) -> None:
    """The campaign stops and disappears from lists; what it sent stays in the history."""
    campaign = await _campaign(ctx, caller.tenant_id, campaign_id)
    status = campaign.status
    campaign.delete()
    await _apply(ctx, campaign, status, "status", "next_run_at")


async def _campaign(ctx: SchedulerContext, tenant_id: str, campaign_id: str) -> Campaign:
    campaign = await ctx.campaigns.get(tenant_id, campaign_id)
    if campaign is None:
        raise CampaignNotFound(campaign_id)
    return campaign


async def _apply(ctx: SchedulerContext, campaign: Campaign, read_status: CampaignStatus, *fields: str) -> Campaign:
    """Store the changed fields, if no one changed the campaign's status since it was read."""
    updated = await ctx.campaigns.change_if(campaign, read_status, *fields)
    if updated is None:
        raise CampaignChanged()
    return updated
