from datetime import date

import pytest
from publipost_merge.domain import (
    MailingConflict,
    MailingStatus,
    PartSplitter,
    chunked,
    completed_status,
    document_id_for,
    document_summary,
    effective_output,
    fields_records_need,
    mailing_id_for,
    missing_custom_fields,
    missing_record_fields,
    regrouped_names,
    render_context,
    validated_status,
)


def test_the_request_id_names_the_mailing_per_tenant():
    assert mailing_id_for("acme", "req-1") == mailing_id_for("acme", "req-1")
    assert mailing_id_for("acme", "req-1") != mailing_id_for("other", "req-1")
    assert document_id_for("m", 0) != document_id_for("m", 1)


def test_the_record_wins_over_custom_fields_and_date_has_a_default():
    context = render_context({"name": "A", "signatory": "record"}, {"signatory": "custom", "x": "1"}, date(2026, 3, 9))
    assert context == {"date": "09/03/2026", "signatory": "record", "x": "1", "name": "A"}


def test_the_document_number_falls_back_to_the_record_id():
    assert document_summary(3, {"id": 42, "email": ""})["document_number"] == "42"
    assert document_summary(3, {"id": 42, "email": ""})["email"] is None


def test_regrouped_mailings_keep_the_name():
    assert regrouped_names("Notices") == ("Notices (sent by e-mail)", "Notices (not sent by e-mail)")


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


def test_validation_moves_only_a_pending_mailing():
    assert completed_status(3, 1, validation_required=True) is MailingStatus.PENDING_VALIDATION
    assert completed_status(3, 3, validation_required=True) is MailingStatus.FAILED
    assert validated_status("pending_validation", approve=False) is MailingStatus.REJECTED
    with pytest.raises(MailingConflict, match="only a mailing pending validation"):
        validated_status("ready", approve=True)


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
