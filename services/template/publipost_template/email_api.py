"""E-mail templates over HTTP: subject, body and signature of the e-mails that carry documents."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from publipost_auth import Anyone, Operator, Reader
from publipost_contracts.events import TemplateType
from publipost_http import Paging
from pydantic import BaseModel, Field

from .context import Context, TemplateContext
from .domain import TemplateRejected
from .email_templates import (
    DEFAULT_SUBJECTS,
    DOCUMENT_VARIABLES,
    LEGACY_PLACEHOLDERS,
    EmailContent,
    EmailTemplate,
    EmailTemplateDraft,
    EmailTemplateNotFound,
    allowed_variables,
)

router = APIRouter(prefix="/email-templates", tags=["email templates"])


class EmailTemplateIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    template_type: TemplateType = Field(default="standard", description="The document type it is for.")
    entity_type: str = Field(default="client", max_length=64, description="Whose record fields it may name.")
    subject: str = Field(default="", max_length=998, description="Empty: the document type's default subject.")
    body_text: str = Field(min_length=1, max_length=100_000)
    body_html: str | None = Field(default=None, max_length=500_000)
    signature: str = Field(default="", max_length=10_000)


class EmailTemplateView(EmailTemplateIn):
    id: str
    variables: list[str] = Field(description="The variables it uses, once normalised.")
    created_at: datetime
    updated_at: datetime


class EmailTemplatePage(BaseModel):
    items: list[EmailTemplateView]
    total: int
    page: int
    per_page: int


class EmailVariables(BaseModel):
    entity_type: str
    variables: list[str]
    document_variables: list[str]
    legacy_placeholders: dict[str, str]
    default_subjects: dict[str, str]


def _draft(given: EmailTemplateIn) -> EmailTemplateDraft:
    content = EmailContent(given.subject, given.body_text, given.body_html, given.signature)
    return EmailTemplateDraft(given.name, given.template_type, given.entity_type, content)


def _rejected(exc: TemplateRejected) -> HTTPException:
    return HTTPException(422, detail=[problem.as_detail() for problem in exc.problems])


def _view(template: EmailTemplate) -> EmailTemplateView:
    return EmailTemplateView(
        id=template.id,
        name=template.name,
        template_type=template.template_type,
        entity_type=template.entity_type,
        subject=template.subject,
        body_text=template.body_text,
        body_html=template.body_html,
        signature=template.signature,
        variables=template.variables,
        created_at=template.created_at,
        updated_at=template.updated_at,
    )


@router.get("/variables", response_model=EmailVariables)
async def variables(caller: Anyone, entity_type: Annotated[str, Query(max_length=64)] = "client") -> EmailVariables:
    """What a subject, body or signature may name for that entity type, and the defaults."""
    try:
        names = allowed_variables(entity_type)
    except TemplateRejected as exc:
        raise _rejected(exc) from exc
    return EmailVariables(
        entity_type=entity_type,
        variables=names,
        document_variables=list(DOCUMENT_VARIABLES),
        legacy_placeholders={f"<{old}>": f"{{{new}}}" for old, new in LEGACY_PLACEHOLDERS.items()},
        default_subjects=dict(DEFAULT_SUBJECTS),
    )


@router.post("", status_code=201, response_model=EmailTemplateView)
async def create_email_template(ctx: Context, caller: Operator, given: EmailTemplateIn) -> EmailTemplateView:
    try:
        template = EmailTemplate.new(_draft(given), tenant_id=caller.tenant_id)
    except TemplateRejected as exc:
        raise _rejected(exc) from exc
    await ctx.email_templates.add(template)
    return _view(template)


@router.get("", response_model=EmailTemplatePage)
async def list_email_templates(
    ctx: Context, caller: Reader, paging: Paging, template_type: TemplateType | None = None
) -> EmailTemplatePage:
    """Most recently saved first; `template_type` keeps one document type's."""
    templates, total = await ctx.email_templates.page(
        caller.tenant_id, template_type=template_type, skip=paging.skip, limit=paging.per_page
    )
    items = [_view(template) for template in templates]
    return EmailTemplatePage(items=items, total=total, page=paging.page, per_page=paging.per_page)


async def _get(ctx: TemplateContext, tenant_id: str, template_id: str) -> EmailTemplate:
    template = await ctx.email_templates.get(tenant_id, template_id)
    if template is None:
        raise EmailTemplateNotFound(template_id)
    return template


@router.get("/{template_id}", response_model=EmailTemplateView)
async def get_email_template(ctx: Context, caller: Reader, template_id: str) -> EmailTemplateView:
    return _view(await _get(ctx, caller.tenant_id, template_id))


@router.put("/{template_id}", response_model=EmailTemplateView)
async def replace_email_template(
    ctx: Context, caller: Operator, template_id: str, given: EmailTemplateIn
) -> EmailTemplateView:
    existing = await _get(ctx, caller.tenant_id, template_id)
    try:
        template = existing.replaced_by(_draft(given))
    except TemplateRejected as exc:
        raise _rejected(exc) from exc
    if not await ctx.email_templates.replace(template):
        raise EmailTemplateNotFound(template_id)
    return _view(template)


@router.delete("/{template_id}", status_code=204)
async def delete_email_template(ctx: Context, caller: Operator, template_id: str) -> Response:
    if not await ctx.email_templates.delete(caller.tenant_id, template_id):
        raise EmailTemplateNotFound(template_id)
    return Response(status_code=204)
