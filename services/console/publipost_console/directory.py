"""The recipient directory: its clients (searched, a page at a time) and a client's contacts, the import of
a file with its sample files and, when the file is refused, every problem as a table; segments (saved
selections) listed and made."""

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from .downloads import pass_through
from .selection import CRITERIA_ROWS, CRITERION_OPS, SelectionProblem, import_problems, segment_filter, split_list
from .upstream import ServiceRefused
from .web import Labels, Parts, Person, render

router = APIRouter(include_in_schema=False)
CLIENTS_PER_PAGE = 50
SEGMENTS_LISTED = 100
SAMPLES = {"csv", "xlsx"}


@router.get("/directory")
async def clients(
    request: Request,
    parts: Parts,
    person: Person,
    t: Labels,
    q: Annotated[str, Query(max_length=200)] = "",
    after: Annotated[str, Query(max_length=128)] = "",
) -> Response:
    params: dict[str, Any] = {"limit": CLIENTS_PER_PAGE}
    if q.strip():
        params["q"] = q.strip()
    if after:
        params["after"] = after
    found = await parts.services.json("directory", "/recipients", person.access_token, params=params)
    return render(request, parts, t, "directory.html", found=found, q=q, after=after)


@router.get("/directory/clients/{customer_number}")
async def client(request: Request, parts: Parts, person: Person, t: Labels, customer_number: str) -> Response:
    recipient = await parts.services.json("directory", f"/recipients/{quote(customer_number)}", person.access_token)
    return render(request, parts, t, "client.html", client=recipient)


@router.get("/directory/import")
async def import_form(request: Request, parts: Parts, person: Person, t: Labels) -> Response:
    return render(request, parts, t, "import.html")


@router.get("/directory/import/sample.{kind}")
async def sample(parts: Parts, person: Person, kind: str) -> Response:
    if kind not in SAMPLES:
        return Response(status_code=404)
    return await pass_through(parts, "directory", person.access_token, f"/recipients/import/sample.{kind}")


@router.post("/directory/import")
async def import_file(request: Request, parts: Parts, person: Person, t: Labels) -> Response:
    """The file goes on to the directory as the form parser spooled it; a refusal lists every problem."""
    async with request.form(max_files=1) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return render(request, parts, t, "import.html", 422, problem=t("import.problem.file"))
        files = {"file": (upload.filename, upload.file, upload.content_type or "application/octet-stream")}
        answer = await parts.services.call(
            "directory", "POST", "/recipients/import", person.access_token, files=files, ok=(422,)
        )
    if answer.status_code == 422:
        refusal = answer.json()
        message = refusal.get("message") or t("import.refused")
        values = {"problem": message, "problems": import_problems(refusal), "filename": upload.filename}
        return render(request, parts, t, "import.html", 422, **values)
    return render(request, parts, t, "import.html", result=answer.json(), filename=upload.filename)


@router.get("/directory/segments")
async def segments(request: Request, parts: Parts, person: Person, t: Labels) -> Response:
    listed = await parts.services.json(
        "directory", "/segments", person.access_token, params={"per_page": SEGMENTS_LISTED}
    )
    return render(request, parts, t, "segments.html", segments=listed, **_filter_menus(), chosen={})


def _filter_menus() -> dict[str, Any]:
    return {"criteria_rows": range(CRITERIA_ROWS), "criterion_ops": CRITERION_OPS}


@router.post("/directory/segments")
async def create_segment(request: Request, parts: Parts, person: Person, t: Labels) -> Response:
    """A saved filter, or a manual selection when customer numbers are given."""
    token = person.access_token
    form = {name: value for name, value in (await request.form()).multi_items() if isinstance(value, str)}
    chosen = {**form}
    try:
        numbers = split_list(form.get("customer_numbers", "").replace("\n", ","))
        definition = {"customer_numbers": numbers} if numbers else {"filter": segment_filter(form)}
        await parts.services.call(
            "directory", "POST", "/segments", token, json={"name": form.get("name", "").strip(), **definition}
        )
    except (SelectionProblem, ServiceRefused) as problem:
        detail = (
            t("error.service", service=problem.service, detail=problem.detail)
            if isinstance(problem, ServiceRefused)
            else str(problem)
        )
        listed = await parts.services.json("directory", "/segments", token, params={"per_page": SEGMENTS_LISTED})
        values = {"segments": listed, "chosen": chosen, "problem": detail, **_filter_menus()}
        return render(request, parts, t, "segments.html", 422, **values)
    return RedirectResponse("/directory/segments", status_code=303)


@router.get("/directory/segments/{segment_id}/count")
async def segment_count(request: Request, parts: Parts, person: Person, t: Labels, segment_id: str) -> Response:
    counted = await parts.services.json("directory", f"/segments/{quote(segment_id)}/count", person.access_token)
    return Response(t("segments.clients", count=counted["count"]), media_type="text/plain; charset=utf-8")
