"""Invoices e-mailed as e-invoices through the real stack: an invoice template and its records → a mailing in
Factur-X or UBL → dispatch → the captured e-mails carry INV-xxxx.pdf (the Factur-X one, its XML inside) or the
PDF and INV-xxxx.xml; the print file keeps the plain PDFs; a record whose totals do not add up refuses the
mailing, naming its index and the field."""

import copy
import io
import uuid

import pytest
from docx import Document as WordDocument
from lxml import etree
from publipost_contracts import DispatchCompleted, MergeCompleted, MergeRejected, MergeRequested
from publipost_einvoice import Profile, build_cii, build_ubl, read_invoice, xml_from_facturx
from publipost_einvoice.facturx_pdf import inspect_facturx
from pypdf import PdfReader

from tests.integration.test_dispatch_service import TENANT, dispatch, flow, messages  # noqa: F401
from tests.support import EventTap
from tests.unit.test_einvoice import INVOICE

pytestmark = pytest.mark.slow


def invoice(n: int, email_address: str, **changes: object) -> dict[str, object]:
    record = copy.deepcopy(INVOICE)
    record.update(
        id=f"r{n}",
        invoice_number=f"INV-{n:04d}",
        document_number=f"INV-{n:04d}",
        customer_number=f"C{n:04d}",
        email=email_address,
        **changes,
    )
    return record


def invoice_template() -> bytes:
    document = WordDocument()
    document.add_paragraph("Invoice {{ invoice_number }} of {{ date }}")
    document.add_paragraph("{{ name }}, {{ address }}, {{ postal_code }} {{ city }}")
    document.add_paragraph("Total due: {{ amount_due }} EUR by {{ due_date }}")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


async def upload_invoice_template(flow) -> str:  # noqa: F811
    uploaded = await flow["template_http"].post(
        "/templates",
        headers=TENANT,
        data={"name": "Invoice", "entity_type": "invoice"},
        files={"file": ("invoice.docx", invoice_template())},
    )
    assert uploaded.status_code == 201, uploaded.text
    return uploaded.json()["id"]


def merge_requested(flow, template_id: str, records: list[dict], mailing_format: str) -> MergeRequested:  # noqa: F811
    return MergeRequested(
        tenant_id="acme",
        correlation_id=str(uuid.uuid4()),
        request_id=str(uuid.uuid4()),
        template_id=template_id,
        name="Invoices",
        entity_type="invoice",
        records=records,
        format=mailing_format,
    )


async def invoice_mailing(flow, records: list[dict], mailing_format: str) -> MergeCompleted:  # noqa: F811
    event = merge_requested(flow, await upload_invoice_template(flow), records, mailing_format)
    await flow["system"].publish(event)
    return await flow["tap"].next(MergeCompleted, lambda e: e.request_id == event.request_id, timeout=120)


def attachments(message) -> dict[str, bytes]:
    return {part.get_filename(): part.get_content() for part in message.iter_attachments()}


async def test_a_factur_x_mailing_sends_each_invoice_as_its_factur_x_pdf_and_ubl_to_who_asks_for_it(flow):  # noqa: F811
    chosen = await flow["merge_http"].put(
        "/settings", headers=TENANT, json={"combined_page_limit": 500, "language": "fr", "facturx_profile": "basic"}
    )
    assert chosen.status_code == 200, chosen.text
    kept = (await flow["merge_http"].get("/settings", headers=TENANT)).json()
    assert kept == {"combined_page_limit": 500, "language": "fr", "facturx_profile": "basic"}
    # The second client wants its invoices in UBL: the directory's format wins over the mailing's.
    put = await flow["directory_http"].put(
        "/recipients/C0002", headers=TENANT, json={"email": "two@example.test", "format": "ubl"}
    )
    assert put.status_code in (200, 201), put.text
    records = [invoice(1, "one@example.test"), invoice(2, "two@example.test")]

    mailing = await invoice_mailing(flow, records, "facturx")
    assert (mailing.status, mailing.documents, mailing.failed) == ("ready", 2, 0)
    # The print file is the plain PDFs, one after the other, without any embedded XML (read before the dispatch
    # replaces the mailing by its sent / not sent ones).
    part = await flow["merge_http"].get(f"/mailings/{mailing.mailing_id}/parts/1", headers=TENANT)
    assert part.status_code == 200, part.text
    reader = PdfReader(io.BytesIO(part.content))
    assert reader.attachments == {} and len(reader.pages) == 2

    request = await dispatch(flow, mailing.mailing_id, document_type="invoice")
    outcome = await flow["tap"].next(DispatchCompleted, lambda e: e.dispatch_id == request.dispatch_id, timeout=90)
    assert (outcome.sent, outcome.failed) == (2, 0), outcome.failures

    sent = {m["To"]: attachments(m) for m in messages(flow)}
    assert set(sent["one@example.test"]) == {"INV-0001.pdf"}
    facturx = sent["one@example.test"]["INV-0001.pdf"]
    expected_cii = build_cii(read_invoice(records[0], profile=Profile.BASIC), Profile.BASIC)
    assert xml_from_facturx(facturx) == expected_cii
    seen = inspect_facturx(facturx)
    assert seen.af_relationships == {"factur-x.xml": "/Data"} and seen.conformance_level == "BASIC"
    assert "pdfaid:part" in seen.xmp

    assert set(sent["two@example.test"]) == {"INV-0002.pdf", "INV-0002.xml"}
    assert inspect_facturx(sent["two@example.test"]["INV-0002.pdf"]).embedded_names == []  # the plain PDF
    assert sent["two@example.test"]["INV-0002.xml"] == build_ubl(read_invoice(records[1], profile=Profile.BASIC))
    ubl = etree.fromstring(sent["two@example.test"]["INV-0002.xml"])
    assert ubl.findtext("{*}LegalMonetaryTotal/{*}PayableAmount") == "495.56"


async def test_an_invoice_whose_totals_do_not_add_up_refuses_the_mailing_naming_the_record_and_field(
    flow,  # noqa: F811
    infra,
    namespace,
):
    wrong = invoice(2, "two@example.test", tax=80)
    del wrong["seller"]["vat_id"]
    event = merge_requested(flow, await upload_invoice_template(flow), [invoice(1, "one@example.test"), wrong], "ubl")
    async with EventTap(infra.rabbitmq_url, namespace, MergeRejected) as rejections:
        await flow["system"].publish(event)
        rejected = await rejections.next(MergeRejected, lambda e: e.request_id == event.request_id, timeout=60)

    assert [(p.record_index, p.field, p.message) for p in rejected.problems] == [
        (1, "seller.vat_id", "missing (seller.vat_id, required by the EN 16931 profile)"),
        (1, "tax", "is 80.00 but the VAT per rate is 78.06"),
    ]


async def test_a_client_whose_address_was_fixed_in_the_directory_still_gets_the_mailing_s_factur_x(flow):  # noqa: F811
    """Fixing a client's address in the directory, as one does before re-sending the not-sent, made it a
    recipient whose format was pdf by default: the re-sent invoice went as a plain PDF, without its XML."""
    fixed = await flow["directory_http"].put("/recipients/C0003", headers=TENANT, json={"email": "three@example.test"})
    assert fixed.status_code in (200, 201), fixed.text
    assert fixed.json()["format"] is None

    mailing = await invoice_mailing(flow, [invoice(3, None)], "facturx")
    request = await dispatch(flow, mailing.mailing_id, document_type="invoice")
    outcome = await flow["tap"].next(DispatchCompleted, lambda e: e.dispatch_id == request.dispatch_id, timeout=90)

    assert (outcome.sent, outcome.failed) == (1, 0), outcome.failures
    (message,) = messages(flow)
    assert message["To"] == "three@example.test"
    assert inspect_facturx(attachments(message)["INV-0003.pdf"]).embedded_names == ["factur-x.xml"]
