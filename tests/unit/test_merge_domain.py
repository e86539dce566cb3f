from datetime import UTC, date, datetime

import pytest
from publipost_contracts import Problem
from publipost_merge.domain import (
    Document,
    DocumentStatus,
    EmailState,
    Mailing,
    MailingConflict,
    MailingContents,
    MailingStatus,
    Outcome,
    PartNotFound,
    PartSplitter,
    PrintFilePlan,
    TenantSettings,
    chunked,
    document_id_for,
    mailing_id_for,
    print_part_blob_id,
    regrouped_mailing_id,
)
from publipost_merge.repository import DOCUMENTS, MAILINGS
from publipost_merge.request_checks import (
    effective_output,
    fields_records_need,
    missing_custom_fields,
    missing_record_fields,
    render_context,
)


def a_mailing(output: str = "docx", validation_required: bool = False) -> Mailing:
    return Mailing.requested(
        tenant_id="acme",
        request_id="req-1",
        correlation_id="c-1",
        name="Notices",
        template_id="t",
        template_version=1,
        template_type="standard",
        output=output,
        expected=3,
        validation_required=validation_required,
        warnings=[],
        warnings_count=0,
    )


def contents(documents: int, failed: int) -> MailingContents:
    return MailingContents(documents=documents, failed=failed, parts=[], documents_file_id="f")


def test_the_request_id_names_the_mailing_per_tenant():
    assert mailing_id_for("acme", "req-1") == mailing_id_for("acme", "req-1")
    assert mailing_id_for("acme", "req-1") != mailing_id_for("other", "req-1")
    assert document_id_for("m", 0) != document_id_for("m", 1)


def test_the_record_wins_over_custom_fields_and_date_has_a_default():
    context = render_context({"name": "A", "signatory": "record"}, {"signatory": "custom", "x": "1"}, date(2026, 3, 9))
    assert context == {"date": "09/03/2026", "signatory": "record", "x": "1", "name": "A"}


def test_the_document_number_falls_back_to_the_record_id():
    document = Document.rendered(a_mailing(), 3, {"id": 42, "email": ""})
    assert (document.document_number, document.email, document.index) == ("42", None, 3)
    assert document.id == document_id_for(a_mailing().id, 3)


def test_a_document_waits_for_its_pdf_or_in_a_docx_mailing_for_its_page_count():
    counted = Document.rendered(a_mailing("docx"), 0, {"id": 1})
    assert counted.status is DocumentStatus.RENDERED
    assert counted.converted(None, 3) and (counted.status, counted.page_count, counted.pdf_blob_id) == (
        DocumentStatus.CONVERTED,
        3,
        None,
    )
    waiting = Document.rendered(a_mailing("pdf"), 0, {"id": 1})
    assert waiting.status is DocumentStatus.RENDERED
    assert waiting.converted("pdf-1", 2) and (waiting.status, waiting.page_count) == (DocumentStatus.CONVERTED, 2)
    # A copy of the answer, or a late answer to a resumed request, leaves the first outcome.
    assert not waiting.conversion_failed("timeout") and waiting.status is DocumentStatus.CONVERTED
    failed = Document.failed_rendering(a_mailing("pdf"), 1, {"id": 2}, "rendering failed: loop")
    assert not failed.converted("pdf-2", 1) and failed.status is DocumentStatus.FAILED


def test_regrouped_mailings_keep_the_name_and_are_ready_at_once():
    source = a_mailing()
    source.name = "Renamed"
    sent = Mailing.regrouped(source, "d1", Outcome.SENT)
    not_sent = Mailing.regrouped(source, "d1", Outcome.NOT_SENT)
    assert (sent.name, not_sent.name) == ("Notices (sent by e-mail)", "Notices (not sent by e-mail)")
    assert sent.id == regrouped_mailing_id(source.id, "d1", "sent") and sent.request_id == "req-1/d1/sent"
    assert sent.sendable and sent.side_effects_published and not sent.side_effects_due


def test_a_replaced_mailing_gives_up_its_files():
    mailing = a_mailing()
    mailing.complete(contents(3, 0))
    mailing.replace(["s", "n"])
    assert (mailing.status, mailing.parts, mailing.documents_file_id) == (MailingStatus.REPLACED, [], None)
    assert mailing.replaced_by == ["s", "n"]


async def test_chunks_keep_order_and_the_last_may_be_short():
    async def numbers():
        for n in range(5):
            yield n

    assert [chunk async for chunk in chunked(numbers(), 2)] == [[0, 1], [2, 3], [4]]


def test_custom_fields_without_a_value_are_listed():
    assert missing_custom_fields(["signatory", "branch", "season"], {"signatory": "Ann", "branch": " "}) == [
        "branch",
        "season",
    ]


def test_a_template_without_automatic_pdf_keeps_docx():
    assert effective_output("pdf", auto_pdf=True) == "pdf"
    assert effective_output("pdf", auto_pdf=False) == "docx"
    assert effective_output("docx", auto_pdf=True) == "docx"


def test_a_mailing_completes_once_and_validation_moves_only_a_pending_mailing():
    waiting = a_mailing(validation_required=True)
    waiting.complete(contents(3, 1))
    assert (waiting.status, waiting.documents, waiting.failed) == (MailingStatus.PENDING_VALIDATION, 3, 1)
    with pytest.raises(MailingConflict, match="only a mailing in progress completes"):
        waiting.complete(contents(3, 1))
    nothing = a_mailing(validation_required=True)
    nothing.complete(contents(3, 3))
    assert nothing.status is MailingStatus.FAILED

    waiting.validate(approve=False, reason="wrong premium")
    assert (waiting.status, waiting.validation_reason) == (MailingStatus.REJECTED, "wrong premium")
    with pytest.raises(MailingConflict, match="only a mailing pending validation"):
        waiting.validate(approve=True, reason=None)


def test_a_mailing_waits_for_its_pdfs_or_a_docx_one_for_its_page_counts_once_rendered():
    pdf, docx = a_mailing("pdf"), a_mailing("docx")
    pdf.rendering_done(3)
    docx.rendering_done(3)
    assert (pdf.status, pdf.documents, pdf.pages_only) == (MailingStatus.CONVERTING, 3, False)
    assert (docx.status, docx.pages_only) == (MailingStatus.CONVERTING, True)


def test_records_need_the_template_fields_except_custom_ones_and_the_date():
    needed = fields_records_need(["name", "premium", "signatory", "date"], ["signatory"])
    assert needed == {"name", "premium"}
    assert missing_record_fields({"name": "Ann"}, needed) == ["premium"]


def test_parts_never_cut_a_document():
    splitter = PartSplitter(500)
    documents = [("a", 200), ("b", 250), ("c", 100), ("d", 600), ("e", 1)]
    parts = [part for name, pages in documents if (part := splitter.add(name, pages))]
    assert [*parts, splitter.finish()] == [["a", "b"], ["c"], ["d"], ["e"]]
    assert PartSplitter(500).finish() is None


def test_the_print_file_is_planned_from_page_counts_with_part_ids_fixed_by_the_mailing():
    plan = PrintFilePlan("m1", 500)
    for index, pages in [(0, 200), (1, 250), (3, 100), (4, 600)]:  # index 2 failed: not in the print file
        plan.add(index, pages)
    parts = plan.finish()
    assert [(p.number, p.documents, p.pages, p.first_index, p.last_index) for p in parts] == [
        (1, 2, 450, 0, 1),
        (2, 1, 100, 3, 3),
        (3, 1, 600, 4, 4),
    ]
    assert parts[1].blob_id == print_part_blob_id("m1", 2) and parts[1].built_on_download
    mailing = a_mailing()
    mailing.complete(MailingContents(documents=5, failed=1, parts=parts, documents_file_id="f"))
    assert mailing.part(3) is parts[2]
    with pytest.raises(PartNotFound, match=r"has 3 part\(s\) \(status ready\)"):
        mailing.part(4)


def test_a_mailing_stored_by_an_older_version_loads_with_the_defaults():
    created = datetime(2026, 1, 2, tzinfo=UTC)
    stored = {
        "_id": "m-old",
        "tenant_id": "acme",
        "request_id": "r",
        "correlation_id": "c",
        "name": "Notices",
        "base_name": "Notices",
        "output": "pdf",
        "status": "ready",
        "documents": 2,
        "failed": 0,
        "parts": [{"number": 1, "blob_id": "b1", "documents": 2, "pages": 3}],
        "warnings": [{"field": "records[].x", "message": "lacks x", "record_index": 0}],
        "combined_blob_id": None,  # a field of a version before parts
        "created_at": created,
    }
    mailing = MAILINGS.load(stored)
    assert (mailing.status, mailing.documents_file_id, mailing.template_type) == (MailingStatus.READY, None, "standard")
    assert mailing.warnings == [Problem(field="records[].x", message="lacks x", record_index=0)]
    assert not mailing.part(1).built_on_download  # built when it settled, by that version
    assert MAILINGS.load(MAILINGS.dump(mailing)) == mailing


def test_a_document_goes_to_its_stored_fields_and_back():
    document = Document.rendered(a_mailing("pdf"), 0, {"id": "r1", "customer_number": 7, "name": "Ann"})
    stored = DOCUMENTS.dump(document)
    assert stored["_id"] == document.id and stored["status"] == "rendered" and stored["customer_number"] == "7"
    assert DOCUMENTS.load(stored) == document


def test_a_tenant_without_a_page_limit_of_its_own_takes_the_services():
    assert TenantSettings(id="acme").page_limit(500) == 500
    assert TenantSettings(id="acme", combined_page_limit=2).page_limit(500) == 2


def test_a_document_is_never_sent_until_a_dispatch_tells_and_shows_when_to_whom_or_why_not():
    document = Document.rendered(a_mailing("pdf"), 0, {"id": "r1", "email": "old@example.test"})
    stored = DOCUMENTS.dump(document)
    for field in Document.EMAIL_FIELDS:
        stored.pop(field)  # stored before e-mail states
    assert DOCUMENTS.load(stored).email_state is EmailState.NEVER_SENT

    document.not_sent_by_email("550 no such mailbox")
    assert (document.email_state, document.email_error, document.sent_at) == (
        EmailState.NOT_SENT,
        "550 no such mailbox",
        None,
    )
    at = datetime(2026, 12, 1, 9, tzinfo=UTC)
    document.sent_by_email(at, ["fixed@example.test"])
    assert (document.email_state, document.sent_at, document.sent_to, document.email_error) == (
        EmailState.SENT,
        at,
        ["fixed@example.test"],
        None,
    )
    assert DOCUMENTS.load(DOCUMENTS.dump(document)) == document


def test_a_re_send_of_a_not_sent_mailing_joins_its_original_s_sent_mailing_while_that_one_can_take_it():
    original = a_mailing("pdf")
    sent = Mailing.regrouped(original, "d1", Outcome.SENT)
    not_sent = Mailing.regrouped(original, "d1", Outcome.NOT_SENT, sent_mailing_id=sent.id)
    assert (sent.sent_mailing_id, not_sent.sent_mailing_id) == (None, sent.id)
    assert original.sent_mailing_for("d1", None) == sent.id

    assert not_sent.sent_mailing_for("d2", sent) == sent.id
    again = Mailing.regrouped(not_sent, "d2", Outcome.NOT_SENT, sent_mailing_id=sent.id)
    assert again.name == "Notices (not sent by e-mail)" and again.sent_mailing_id == sent.id

    # Deleted, or itself dispatched and replaced since: the re-sent documents make a sent mailing of their own.
    assert not_sent.sent_mailing_for("d2", None) == regrouped_mailing_id(not_sent.id, "d2", Outcome.SENT)
    sent.replace([])
    assert not_sent.sent_mailing_for("d2", sent) == regrouped_mailing_id(not_sent.id, "d2", Outcome.SENT)


def test_a_document_lists_its_records_single_values_for_its_e_mail_dated_by_the_record_or_the_mailing():
    record = {"id": 7, "amount_due": 120, "branch": "Lyon", "lines": [{"a": 1}], "note": "", "paid": False}
    document = Document.rendered(a_mailing("pdf"), 0, record)
    mailing_day = a_mailing().created_at.strftime("%d/%m/%Y")
    assert document.fields == {"date": mailing_day, "id": "7", "amount_due": "120", "branch": "Lyon", "paid": "False"}
    assert Document.rendered(a_mailing("pdf"), 0, {"id": 7, "date": "15/11/2026"}).fields["date"] == "15/11/2026"
