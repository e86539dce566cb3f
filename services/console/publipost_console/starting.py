"""A new mailing: its records from a saved segment, a directory selection made on the form (saved as a
segment, so it can be used again) or an uploaded file streamed on to merge; its template and the template's
custom fields; its name. Then its page, once merge has taken it. And the renaming of a mailing."""

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from .screens import safe_next
from .selection import CRITERIA_ROWS, CRITERION_OPS, SelectionProblem, custom_field_values, segment_filter
from .upstream import ServiceRefused
from .web import Console, Labels, Parts, Person, is_htmx, render

router = APIRouter(include_in_schema=False)
SOURCES = ("segment", "filter", "file")
MAX_LISTED = 100  # the services' largest page: templates and segments offered in a menu


async def templates_menu(parts: Console, token: str) -> list[dict[str, Any]]:
    return (await parts.services.json("template", "/templates", token, params={"per_page": MAX_LISTED}))["items"]


async def _template(parts: Console, token: str, template_id: str) -> dict[str, Any] | None:
    if not template_id:
        return None
    answer = await parts.services.call("template", "GET", f"/templates/{quote(template_id)}", token, ok=(404,))
    return answer.json() if answer.status_code == 200 else None


async def _form(
    request: Request, parts: Console, t: Labels, token: str, chosen: dict[str, Any], status: int = 200, **more: Any
) -> Response:
    segments = await parts.services.json("directory", "/segments", token, params={"per_page": MAX_LISTED})
    return render(
        request,
        parts,
        t,
        "new_mailing.html",
        status,
        templates=await templates_menu(parts, token),
        template=await _template(parts, token, chosen.get("template_id", "")),
        segments=segments,
        chosen=chosen,
        sources=SOURCES,
        criteria_rows=range(CRITERIA_ROWS),
        criterion_ops=CRITERION_OPS,
        **more,
    )


@router.get("/mailings/new")
async def new_mailing(
    request: Request,
    parts: Parts,
    person: Person,
    t: Labels,
    template_id: Annotated[str, Query(max_length=128)] = "",
    segment_id: Annotated[str, Query(max_length=128)] = "",
) -> Response:
    chosen = {"template_id": template_id, "segment_id": segment_id, "source": "segment" if segment_id else "file"}
    return await _form(request, parts, t, person.access_token, chosen)


@router.get("/mailings/new/fields")
async def custom_fields(
    request: Request, parts: Parts, person: Person, t: Labels, template_id: Annotated[str, Query(max_length=128)] = ""
) -> Response:
    """The chosen template's custom fields, asked again when another template is chosen."""
    template = await _template(parts, person.access_token, template_id)
    return render(request, parts, t, "custom_fields.html", template=template, chosen={})


@router.post("/mailings/new")
async def start_mailing(request: Request, parts: Parts, person: Person, t: Labels) -> Response:
    """merge's POST /mailings; an uploaded file goes on as it was spooled by the form parser, read a piece at a
    time by the HTTP client, never whole in memory."""
    token = person.access_token
    async with request.form(max_files=1) as form:
        upload = form.get("file")
        fields = {name: value for name, value in form.multi_items() if isinstance(value, str)}
        chosen: dict[str, Any] = {
            **fields,
            "source": fields.get("source") if fields.get("source") in SOURCES else "file",
        }
        template = await _template(parts, token, fields.get("template_id", ""))
        if template is None:
            return await _form(request, parts, t, token, chosen, 422, problem=t("new.problem.template"))
        body: dict[str, Any] = {
            "request_id": fields.get("request_id") or str(uuid.uuid4()),
            "template_id": template["id"],
            "custom_fields": custom_field_values(template["custom_fields"], fields),
            "output": "pdf",
            "missing_fields": "render_empty" if fields.get("missing_fields") == "render_empty" else "refuse",
            "entity_type": template["entity_type"],
        }
        if name := fields.get("name", "").strip():
            body["name"] = name
        try:
            if chosen["source"] == "file":
                if not isinstance(upload, UploadFile) or not upload.filename:
                    return await _form(request, parts, t, token, chosen, 422, problem=t("new.problem.file"))
                data = {**body, "custom_fields": json.dumps(body["custom_fields"])}
                files = {"file": (upload.filename, upload.file, upload.content_type or "application/octet-stream")}
                answer = await parts.services.call("merge", "POST", "/mailings", token, data=data, files=files)
            else:
                segment_id = fields.get("segment_id", "")
                if chosen["source"] == "filter":
                    segment_id = await _save_selection(parts, token, fields, name or template["name"])
                if not segment_id:
                    return await _form(request, parts, t, token, chosen, 422, problem=t("new.problem.segment"))
                answer = await parts.services.call(
                    "merge", "POST", "/mailings", token, json={**body, "segment_id": segment_id}
                )
        except SelectionProblem as problem:
            return await _form(request, parts, t, token, chosen, 422, problem=str(problem))
        except ServiceRefused as refused:
            problem = t("error.service", service=refused.service, detail=refused.detail)
            return await _form(request, parts, t, token, chosen, 422, problem=problem)
    return RedirectResponse(f"/mailings/{quote(answer.json()['mailing_id'])}/starting", status_code=303)


async def _save_selection(parts: Console, token: str, fields: dict[str, str], default_name: str) -> str:
    """The selection made on the form, saved as a segment so the same clients can be chosen again."""
    name = fields.get("selection_name", "").strip() or f"{default_name} {datetime.now(UTC):%Y-%m-%d %H:%M:%S}"
    segment = {"name": name, "filter": segment_filter(fields)}
    answer = await parts.services.call("directory", "POST", "/segments", token, json=segment)
    return answer.json()["id"]


@router.get("/mailings/{mailing_id}/starting")
async def starting(request: Request, parts: Parts, person: Person, t: Labels, mailing_id: str) -> Response:
    """merge answers 404 for the instant before it takes a request: this page waits for the mailing."""
    try:
        path = f"/mailings/{quote(mailing_id)}"
        answer = await parts.services.call("merge", "GET", path, person.access_token, ok=(404,))
    except ServiceRefused:  # 410: merge refused the request; the whole page says why
        if is_htmx(request):  # htmx leaves an error answer unshown
            return Response(status_code=204, headers={"HX-Redirect": f"/mailings/{quote(mailing_id)}/starting"})
        raise
    if answer.status_code == 200:
        if is_htmx(request):
            return Response(status_code=204, headers={"HX-Redirect": f"/mailings/{quote(mailing_id)}"})
        return RedirectResponse(f"/mailings/{quote(mailing_id)}", status_code=303)
    return render(request, parts, t, "starting.html", mailing_id=mailing_id)


@router.get("/mailings/{mailing_id}/rename")
async def rename_form(
    request: Request, parts: Parts, person: Person, t: Labels, mailing_id: str, back: str | None = None
) -> Response:
    mailing = await parts.services.json("merge", f"/mailings/{quote(mailing_id)}", person.access_token)
    return render(request, parts, t, "rename.html", mailing=mailing, new_name=mailing["name"], back=safe_next(back))


@router.post("/mailings/{mailing_id}/rename")
async def rename(
    request: Request,
    parts: Parts,
    person: Person,
    t: Labels,
    mailing_id: str,
    name: Annotated[str, Form(max_length=400)],
    back: Annotated[str | None, Form()] = None,
) -> Response:
    path = f"/mailings/{quote(mailing_id)}"
    try:
        await parts.services.call("merge", "PATCH", path, person.access_token, json={"name": name.strip()})
    except ServiceRefused as refused:
        mailing = await parts.services.json("merge", path, person.access_token)
        problem = t("error.service", service=refused.service, detail=refused.detail)
        values = {"mailing": mailing, "new_name": name, "back": safe_next(back), "problem": problem}
        return render(request, parts, t, "rename.html", 422, **values)
    return RedirectResponse(safe_next(back or path), status_code=303)
