"""Document templates: the list and an upload (name, type, entity type, options, custom fields); a template's
fields and versions, with the upload of a new version; e-mail templates listed, made and edited."""

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from .selection import TEMPLATE_TYPES
from .upstream import ServiceRefused
from .web import Console, Labels, Parts, Person, render

router = APIRouter(include_in_schema=False)
LISTED = 100
KEPT_EMAIL_FIELDS = ("entity_type", "body_html")


def _problem(t: Labels, refused: ServiceRefused) -> str:
    return t("error.service", service=refused.service, detail=refused.detail)


def _upload_file(upload: Any) -> tuple[str, Any, str] | None:
    """The form's file as it was spooled, for the HTTP client to read a piece at a time."""
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    return (upload.filename, upload.file, upload.content_type or "application/octet-stream")


def _options(form: dict[str, str]) -> dict[str, str]:
    """The template's options as the template service's form takes them. Every one is sent, a new version's
    form being filled with the latest version's: an unticked box is absent from a form, and meaning "no" it
    must not keep the latest version's value."""
    return {
        "template_type": form.get("template_type") or "standard",
        "entity_type": form.get("entity_type", "").strip() or "client",
        "custom_fields": form.get("custom_fields", "").strip(),
        "auto_pdf": "true" if form.get("auto_pdf") else "false",
        "validation_required": "true" if form.get("validation_required") else "false",
    }


@router.get("/templates")
async def template_list(request: Request, parts: Parts, person: Person, t: Labels) -> Response:
    return await _list(request, parts, t, person.access_token, chosen={})


async def _list(request: Request, parts: Console, t: Labels, token: str, status: int = 200, **more: Any) -> Response:
    listed = await parts.services.json("template", "/templates", token, params={"per_page": LISTED})
    return render(request, parts, t, "templates.html", status, listed=listed, types=TEMPLATE_TYPES, **more)


@router.post("/templates")
async def upload_template(request: Request, parts: Parts, person: Person, t: Labels) -> Response:
    token = person.access_token
    async with request.form(max_files=1) as form:
        fields = {name: value for name, value in form.multi_items() if isinstance(value, str)}
        file = _upload_file(form.get("file"))
        if file is None:
            return await _list(request, parts, t, token, 422, chosen=fields, problem=t("templates.problem.file"))
        data = {"name": fields.get("name", "").strip(), **_options(fields)}
        try:
            answer = await parts.services.call("template", "POST", "/templates", token, data=data, files={"file": file})
        except ServiceRefused as refused:
            return await _list(request, parts, t, token, 422, chosen=fields, problem=_problem(t, refused))
    return RedirectResponse(f"/templates/{quote(answer.json()['id'])}", status_code=303)


async def _template_page(
    request: Request, parts: Console, t: Labels, token: str, template_id: str, status: int = 200, **more: Any
) -> Response:
    path = f"/templates/{quote(template_id)}"
    template = await parts.services.json("template", path, token)
    versions = await parts.services.json("template", f"{path}/versions", token)
    values = {"template": template, "versions": versions, "types": TEMPLATE_TYPES, **more}
    return render(request, parts, t, "template.html", status, **values)


@router.get("/templates/{template_id}")
async def template_page(request: Request, parts: Parts, person: Person, t: Labels, template_id: str) -> Response:
    return await _template_page(request, parts, t, person.access_token, template_id)


@router.post("/templates/{template_id}/versions")
async def new_version(request: Request, parts: Parts, person: Person, t: Labels, template_id: str) -> Response:
    token = person.access_token
    async with request.form(max_files=1) as form:
        fields = {name: value for name, value in form.multi_items() if isinstance(value, str)}
        file = _upload_file(form.get("file"))
        if file is None:
            problem = t("templates.problem.file")
            return await _template_page(request, parts, t, token, template_id, 422, problem=problem)
        path = f"/templates/{quote(template_id)}/versions"
        try:
            data = _options(fields)
            await parts.services.call("template", "POST", path, token, data=data, files={"file": file})
        except ServiceRefused as refused:
            return await _template_page(request, parts, t, token, template_id, 422, problem=_problem(t, refused))
    return RedirectResponse(f"/templates/{quote(template_id)}?uploaded=1", status_code=303)


@router.get("/email-templates")
async def email_templates(request: Request, parts: Parts, person: Person, t: Labels) -> Response:
    return await _email_list(request, parts, t, person.access_token, chosen={"template_type": "standard"})


async def _email_list(
    request: Request, parts: Console, t: Labels, token: str, status: int = 200, **more: Any
) -> Response:
    listed = await parts.services.json("template", "/email-templates", token, params={"per_page": LISTED})
    return render(request, parts, t, "email_templates.html", status, listed=listed, types=TEMPLATE_TYPES, **more)


class EmailTemplateForm(BaseModel):
    """An e-mail template's form, as the template service takes it (name and subject trimmed)."""

    name: str = ""
    template_type: str = "standard"
    subject: str = ""
    body_text: str = ""
    signature: str = ""

    def body(self) -> dict[str, str]:
        return {**self.model_dump(), "name": self.name.strip(), "subject": self.subject.strip()}


@router.post("/email-templates")
async def create_email_template(
    request: Request,
    parts: Parts,
    person: Person,
    t: Labels,
    form: Annotated[EmailTemplateForm, Form()],
) -> Response:
    body = form.body()
    try:
        await parts.services.call("template", "POST", "/email-templates", person.access_token, json=body)
    except ServiceRefused as refused:
        return await _email_list(request, parts, t, person.access_token, 422, chosen=body, problem=_problem(t, refused))
    return RedirectResponse("/email-templates", status_code=303)


@router.get("/email-templates/{template_id}")
async def email_template(request: Request, parts: Parts, person: Person, t: Labels, template_id: str) -> Response:
    found = await parts.services.json("template", f"/email-templates/{quote(template_id)}", person.access_token)
    return render(request, parts, t, "email_template.html", chosen=found, template_id=template_id, types=TEMPLATE_TYPES)


@router.post("/email-templates/{template_id}")
async def save_email_template(
    request: Request,
    parts: Parts,
    person: Person,
    t: Labels,
    template_id: str,
    form: Annotated[EmailTemplateForm, Form()],
) -> Response:
    body = form.body()
    path = f"/email-templates/{quote(template_id)}"
    existing = await parts.services.json("template", path, person.access_token)
    kept = {field: existing[field] for field in KEPT_EMAIL_FIELDS if existing.get(field) is not None}
    try:  # PUT replaces: what the form does not show is given back as it was
        await parts.services.call("template", "PUT", path, person.access_token, json={**kept, **body})
    except ServiceRefused as refused:
        values = {"chosen": body, "template_id": template_id, "types": TEMPLATE_TYPES, "problem": _problem(t, refused)}
        return render(request, parts, t, "email_template.html", 422, **values)
    values = {"chosen": body, "template_id": template_id, "types": TEMPLATE_TYPES, "saved": True}
    return render(request, parts, t, "email_template.html", **values)
