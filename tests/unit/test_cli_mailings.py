"""`publipost mailing create | list | show`, `watch` and `download`, against merge's API answered from a table."""

import json

import httpx
import pytest
from publipost.progress import Stage, mailing_stages
from publipost.session import counted

from tests.unit.fakes.services_http import PROFILE, Terminal, form_fields

MAILINGS = f"{PROFILE.merge_url}/mailings"


def view(status: str, **counts: object) -> dict:
    return {
        "id": "m1",
        "name": "November notices",
        "status": status,
        "sendable": status == "ready",
        "created_at": "2026-11-30T09:15:00Z",
        "output": "pdf",
        "template_id": "t1",
        "template_version": 2,
        "expected": 4,
        "documents": 0,
        "rendered": 0,
        "failed": 0,
        "parts": [],
        "warnings": [],
        "warnings_count": 0,
        **counts,
    }


READY = view("ready", documents=4, rendered=4, converted=4, parts=[{"number": 1, "documents": 4, "pages": 4}])


@pytest.fixture
def terminal(tmp_path):
    terminal = Terminal(tmp_path / "config", env_credential="token")
    return terminal


def test_a_mailing_is_created_from_a_file_and_followed_until_ready(terminal, tmp_path):
    records = tmp_path / "records.csv"
    records.write_text("id,name,email\nr1,Ann,ann@example.test\n")
    terminal.services.on(
        "POST", MAILINGS, httpx.Response(202, json={"request_id": "billing-2026-11", "mailing_id": "m1"})
    )
    not_recorded_yet = httpx.Response(404, json={"detail": "no mailing 'm1' for this tenant"})
    terminal.services.on(
        "GET",
        f"{MAILINGS}/m1",
        not_recorded_yet,
        view("rendering", rendered=2),
        view("converting", documents=4, rendered=4, converted=1),
        READY,
    )

    result = terminal.run(
        "mailing",
        "create",
        "--template",
        "t1",
        "--records",
        str(records),
        "--name",
        "November notices",
        "--field",
        "signatory=Jane Manager",
        "--field",
        "branch=Lyon",
        "--request-id",
        "billing-2026-11",
    )

    assert result.exit_code == 0, result.output
    sent = form_fields(terminal.services.sent("POST", MAILINGS)[0])
    assert sent == {
        "template_id": "t1",
        "request_id": "billing-2026-11",
        "custom_fields": '{"signatory": "Jane Manager", "branch": "Lyon"}',
        "output": "pdf",
        "name": "November notices",
        "file": ("records.csv", b"id,name,email\nr1,Ann,ann@example.test\n"),
    }
    assert "mailing m1 requested (request id billing-2026-11)" in result.output
    assert "converting to PDF" in result.output and "4/4" in result.output
    assert "November notices (m1): ready, 4 documents, print file in 1 part, 4 pages" in result.output
    assert len(terminal.services.sent("GET", f"{MAILINGS}/m1")) == 4


def test_a_refused_request_names_each_field_and_exits_non_zero(terminal, tmp_path):
    records = tmp_path / "records.json"
    records.write_text("[]")
    problems = [
        {"loc": ["body", "custom_fields", "signatory"], "msg": "missing: the template needs it", "type": "missing"},
        {"loc": ["body", "file", 3, "email"], "msg": "not an e-mail address", "type": "value_error"},
    ]
    terminal.services.on("POST", MAILINGS, httpx.Response(422, json={"detail": problems}))

    result = terminal.run("mailing", "create", "--template", "t1", "--records", str(records))

    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: merge answered 422: custom_fields.signatory: missing: the template needs it; "
        "file.3.email: not an e-mail address"
    )


def test_a_custom_field_without_a_value_is_a_usage_error_naming_the_option(terminal, tmp_path):
    records = tmp_path / "records.json"
    records.write_text("[]")

    result = terminal.run("mailing", "create", "--template", "t1", "--records", str(records), "--field", "signatory")

    assert result.exit_code == 2
    assert "--field" in result.output and "'signatory' is not name=value" in result.output
    assert terminal.services.requests == []


def test_watching_an_unknown_mailing_is_merge_s_404(terminal):
    terminal.services.on(
        "GET", f"{MAILINGS}/m9", httpx.Response(404, json={"detail": "no mailing 'm9' for this tenant"})
    )

    result = terminal.run("watch", "m9")

    assert result.exit_code == 1
    assert "error: merge answered 404: no mailing 'm9' for this tenant" in result.output


def test_a_mailing_that_fails_is_said_and_the_command_fails(terminal):
    terminal.services.on("GET", f"{MAILINGS}/m1", view("failed", failed=2))
    reason = "rendering failed: TypeError: '>' not supported between instances of 'str' and 'int'"
    documents = [
        {"document_number": f"INV-000{n}", "record_id": f"r{n}", "status": "failed", "error": reason} for n in (1, 2)
    ]
    terminal.services.on("GET", f"{MAILINGS}/m1/documents", {"items": documents, "next_after": None})

    result = terminal.run("watch", "m1")

    assert result.exit_code == 1
    assert (
        f"error: November notices (m1): failed, 0 documents, 2 failed\n  INV-0001: {reason}\n  INV-0002: {reason}\n"
        in (result.output)
    )


def test_the_stages_of_a_mailing_fill_as_merge_counts_them():
    assert mailing_stages(view("rendering", rendered=3)) == [
        Stage("rendering", 3, 4),
        Stage("converting to PDF", 0, 4),
        Stage("ready", 0, 1),
    ]
    assert mailing_stages(view("converting", documents=3, rendered=4, failed=1, converted=2)) == [
        Stage("rendering", 4, 4),
        Stage("converting to PDF", 2, 3),
        Stage("ready", 0, 1),
    ]
    assert mailing_stages(view("pending_validation", documents=4, rendered=4, output="docx")) == [
        Stage("rendering", 4, 4),
        Stage("counting pages", 4, 4),
        Stage("pending validation", 1, 1),
    ]


def test_the_list_is_a_page_of_the_tenant_s_mailings_with_the_next_page_said(terminal):
    page = {"items": [READY], "total": 41, "page": 1, "per_page": 20}
    terminal.services.on("GET", MAILINGS, page)

    result = terminal.run("mailing", "list", "--status", "ready")

    assert result.exit_code == 0, result.output
    assert "2026-11-30 09:15  m1  November notices  ready   4" in result.output
    assert "page 1 of 3 (41 mailings); --page 2 for the next" in result.output
    assert terminal.services.requests[0].url.params["status"] == "ready"
    assert json.loads(terminal.run("mailing", "list", "--json").output) == page


def test_show_tells_parts_warnings_and_regrouping(terminal):
    regrouped = {
        **READY,
        "name": "November notices (not sent by e-mail)",
        "warnings": [{"message": "record 2: branch rendered empty"}],
        "warnings_count": 1,
        "regrouped_from": {"mailing_id": "m0", "dispatch_id": "d1", "outcome": "not_sent"},
    }
    terminal.services.on("GET", f"{MAILINGS}/m1", regrouped)

    result = terminal.run("mailing", "show", "m1")

    assert result.exit_code == 0, result.output
    assert "part 1: 4 documents, 4 pages" in result.output
    assert "warning: record 2: branch rendered empty" in result.output
    assert "regrouped from m0 after dispatch d1 (not_sent)" in result.output


def test_every_part_of_the_print_file_is_downloaded_under_the_name_merge_gives(terminal, tmp_path):
    two_parts = {
        **READY,
        "parts": [{"number": 1, "documents": 2, "pages": 2}, {"number": 2, "documents": 2, "pages": 2}],
    }
    terminal.services.on("GET", f"{MAILINGS}/m1", two_parts)
    for n in (1, 2):
        # A name that tries to leave the folder is written inside it.
        disposition = {"content-disposition": f'attachment; filename="../November-part{n}.pdf"'}
        terminal.services.on(
            "GET", f"{MAILINGS}/m1/parts/{n}", httpx.Response(200, content=b"%PDF-" + bytes([n]), headers=disposition)
        )
    folder = tmp_path / "out"
    folder.mkdir()

    result = terminal.run("download", "m1", "-o", str(folder))

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["November-part1.pdf", "November-part2.pdf"]
    assert (folder / "November-part2.pdf").read_bytes() == b"%PDF-\x02"
    assert f"wrote {folder / 'November-part1.pdf'} (6 bytes)" in result.output


def test_one_part_or_one_document_goes_to_the_file_named(terminal, tmp_path):
    terminal.services.on("GET", f"{MAILINGS}/m1/parts/2", httpx.Response(200, content=b"%PDF-part"))
    terminal.services.on("GET", f"{MAILINGS}/m1/documents/d7/content", httpx.Response(200, content=b"PK docx"))

    assert terminal.run("download", "m1", "--part", "2", "-o", str(tmp_path / "p2.pdf")).exit_code == 0
    assert (
        terminal.run(
            "download", "m1", "--document", "d7", "--format", "docx", "-o", str(tmp_path / "d7.docx")
        ).exit_code
        == 0
    )

    assert (tmp_path / "p2.pdf").read_bytes() == b"%PDF-part"
    assert (tmp_path / "d7.docx").read_bytes() == b"PK docx"
    assert terminal.services.sent("GET", f"{MAILINGS}/m1/documents/d7/content")[0].url.params["format"] == "docx"


def test_a_download_merge_refuses_says_why(terminal, tmp_path):
    missing = httpx.Response(404, json={"detail": "no document 'd9' in mailing 'm1'"})
    terminal.services.on("GET", f"{MAILINGS}/m1/documents/d9/content", missing)

    result = terminal.run("download", "m1", "--document", "d9", "-o", str(tmp_path / "d9.pdf"))

    assert result.exit_code == 1
    assert "error: merge answered 404: no document 'd9' in mailing 'm1'" in result.output
    assert not (tmp_path / "d9.pdf").exists()


def test_an_invoice_mailing_says_how_its_documents_go_by_e_mail(terminal, tmp_path):
    records = tmp_path / "invoices.json"
    records.write_text('[{"id": "r1", "document_number": "INV-1"}]')
    terminal.services.on("POST", MAILINGS, httpx.Response(202, json={"request_id": "q", "mailing_id": "m1"}))

    result = terminal.run(
        "mailing", "create", "--template", "t1", "--records", str(records), "--e-invoice", "facturx", "--no-wait"
    )
    refused = terminal.run("mailing", "create", "--template", "t1", "--records", str(records), "--e-invoice", "xml")

    assert result.exit_code == 0, result.output
    assert form_fields(terminal.services.sent("POST", MAILINGS)[0])["format"] == "facturx"
    assert refused.exit_code == 2 and "--e-invoice" in refused.output


def test_counts_read_as_a_person_writes_them():
    assert [counted(1, "document"), counted(3, "document"), counted(0, "page")] == ["1 document", "3 documents", "0 pages"]
