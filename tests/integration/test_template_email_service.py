"""E-mail templates against the real database: saved normalised, refused at save time when dispatch could
not fill them."""

import httpx
import pytest
from publipost_template.app import build
from publipost_template.settings import TemplateSettings

from tests.credentials import credentials

ACME = credentials("acme")


@pytest.fixture
async def http(make_settings, running):
    service = build(make_settings(TemplateSettings))
    await running(service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://t") as http:
        yield http


def reminder(**overrides: object) -> dict[str, object]:
    return {
        "name": "Payment reminder",
        "template_type": "payment_reminder",
        "subject": "Invoice <NUMFACT> - <NOMSOC>",
        "body_text": "Dear <NOMSOC>,\nInvoice <NUMFACT> of <DATEFACT> ({amount_due} EUR) is still unpaid.\n",
        "body_html": "<p>Dear {client_name},</p><p>Invoice &lt;NUMFACT&gt; is due on {due_date}.</p>",
        "signature": "-- {branch} office",
        **overrides,
    }


async def test_an_e_mail_template_is_saved_with_legacy_placeholders_in_the_brace_form(http):
    response = await http.post("/email-templates", headers=ACME, json=reminder())
    assert response.status_code == 201, response.text
    saved = response.json()
    assert saved["subject"] == "Invoice {document_number} - {client_name}"
    assert saved["body_text"] == (
        "Dear {client_name},\nInvoice {document_number} of {date} ({amount_due} EUR) is still unpaid.\n"
    )
    assert saved["body_html"] == "<p>Dear {client_name},</p><p>Invoice {document_number} is due on {due_date}.</p>"
    assert saved["variables"] == ["amount_due", "branch", "client_name", "date", "document_number", "due_date"]
    assert (saved["entity_type"], saved["template_type"]) == ("client", "payment_reminder")

    assert (await http.get(f"/email-templates/{saved['id']}", headers=ACME)).json() == saved
    listed = (await http.get("/email-templates", headers=ACME)).json()
    assert (listed["items"], listed["total"]) == ([saved], 1)
    assert (await http.get(f"/email-templates/{saved['id']}", headers=credentials("other"))).status_code == 404


async def test_without_a_subject_the_document_types_default_subject_is_used(http):
    saved = (await http.post("/email-templates", headers=ACME, json=reminder(subject="", body_html=None))).json()
    defaults = (await http.get("/email-templates/variables", headers=ACME)).json()["default_subjects"]
    assert saved["subject"] == defaults["payment_reminder"] == "Payment reminder {document_number} - {client_name}"


async def test_unknown_variables_are_refused_at_save_time_listing_them_per_field(http):
    response = await http.post(
        "/email-templates",
        headers=ACME,
        json=reminder(subject="Invoice {invoice_no}", body_text="Dear <NOMCLI>, {document_numbr} {supplier_number}"),
    )
    assert response.status_code == 422
    problems = {tuple(p["loc"]): p for p in response.json()["detail"]}
    assert problems[("body", "subject")]["ctx"]["names"] == ["invoice_no"]
    assert problems[("body", "body_text")]["ctx"]["names"] == ["<NOMCLI>", "document_numbr", "supplier_number"]
    assert "{document_numbr}" in problems[("body", "body_text")]["msg"]
    assert (await http.get("/email-templates", headers=ACME)).json()["total"] == 0


async def test_record_fields_depend_on_the_entity_type_the_template_needs(http):
    supplier = reminder(entity_type="supplier", body_text="Supplier {supplier_number}", signature="")
    assert (await http.post("/email-templates", headers=ACME, json=supplier)).status_code == 201
    client = reminder(body_text="Supplier {supplier_number}", signature="")
    assert (await http.post("/email-templates", headers=ACME, json=client)).status_code == 422
    variables = (await http.get("/email-templates/variables", params={"entity_type": "supplier"}, headers=ACME)).json()
    assert "supplier_number" in variables["variables"] and "client_name" in variables["variables"]
    assert variables["legacy_placeholders"] == {
        "<NUMFACT>": "{document_number}", "<DATEFACT>": "{date}", "<NOMSOC>": "{client_name}"
    }


@pytest.mark.parametrize(
    ("field", "text", "says"),
    [
        ("body_text", "Total {amount_due:.2f}", "formats are not supported"),
        ("body_html", "<style>p { color: red }</style>", "write {{ and }} for a literal brace"),
        ("subject", "Invoice\n{document_number}", "a subject is a single line"),
        ("subject", "Invoice\x00{document_number}", "a subject may not contain the control character U+0000"),
        ("subject", "Invoice\x0c{document_number}", "a subject may not contain the control character U+000C"),
    ],
)
async def test_what_dispatch_could_not_send_is_refused_at_save_time(http, field, text, says):
    response = await http.post("/email-templates", headers=ACME, json=reminder(**{field: text}))
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", field] and says in problem["msg"]


async def test_an_e_mail_template_is_replaced_and_deleted(http):
    saved = (await http.post("/email-templates", headers=ACME, json=reminder())).json()
    replaced = await http.put(
        f"/email-templates/{saved['id']}", headers=ACME, json=reminder(name="Reminder 2", subject="<NUMFACT>")
    )
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["name"], replaced.json()["subject"]) == ("Reminder 2", "{document_number}")
    assert replaced.json()["created_at"] == saved["created_at"]
    assert (await http.get(f"/email-templates/{saved['id']}", headers=ACME)).json() == replaced.json()
    refused = await http.put(f"/email-templates/{saved['id']}", headers=ACME, json=reminder(subject="{nope}"))
    assert refused.status_code == 422
    assert (await http.get(f"/email-templates/{saved['id']}", headers=ACME)).json()["subject"] == "{document_number}"

    assert (await http.delete(f"/email-templates/{saved['id']}", headers=ACME)).status_code == 204
    assert (await http.get(f"/email-templates/{saved['id']}", headers=ACME)).status_code == 404
    assert (await http.delete(f"/email-templates/{saved['id']}", headers=ACME)).status_code == 404
    assert (await http.put("/email-templates/nope", headers=ACME, json=reminder())).status_code == 404
