import email
import email.policy
import re
from datetime import timedelta

import pytest
from publipost_dispatch.domain import (
    AccountInvalid,
    Addressing,
    DocumentFacts,
    EmailText,
    InvalidAddress,
    TlsMode,
    UnknownVariable,
    UnsafeHeader,
    Verdict,
    attachment_name,
    check_header,
    check_tls,
    document_kind,
    fill,
    search_terms,
    should_pause,
    too_many_recipients,
    verdict_for_attempt,
    verdict_for_reply,
    wider_history_window,
)
from publipost_dispatch.mail import build_message, pdf_attachment
from publipost_dispatch.sealing import PasswordSeal, SealBroken

PDF = b"%PDF-1.4 fake" + bytes(range(256)) * 40


def test_4xx_is_retried_and_5xx_is_final():
    assert verdict_for_reply(451) is Verdict.RETRY
    assert verdict_for_reply(421) is Verdict.RETRY
    assert verdict_for_reply(550) is Verdict.FAILED
    assert verdict_for_reply(530) is Verdict.FAILED


def test_a_temporary_failure_is_final_once_the_document_had_its_tries():
    assert verdict_for_attempt(Verdict.RETRY, attempts=3, max_attempts=4) is Verdict.RETRY
    assert verdict_for_attempt(Verdict.RETRY, attempts=4, max_attempts=4) is Verdict.FAILED
    assert verdict_for_attempt(Verdict.FAILED, attempts=1, max_attempts=4) is Verdict.FAILED


def test_the_error_threshold_pauses_once_reached():
    assert not should_pause(2, 3)
    assert should_pause(3, 3)


def test_variables_are_filled_and_an_unknown_one_is_named():
    assert fill("subject", "Invoice {document_number} - {client_name}", {"document_number": "7", "client_name": "A"}) == (
        "Invoice 7 - A"
    )
    with pytest.raises(UnknownVariable, match=r"subject: no value for \{amount\} in this document.s record"):
        fill("subject", "Pay {amount}", {})


def test_legacy_placeholders_literal_braces_and_html_escaping():
    variables = {"document_number": "F-1", "client_name": "Dupont & Fils", "date": "01/02/2026"}
    assert fill("subject", "Facture <NUMFACT> du <DATEFACT> - <NOMSOC>", variables) == (
        "Facture F-1 du 01/02/2026 - Dupont & Fils"
    )
    assert fill("html_body", "<style>p {{ color: red }}</style><p>{client_name}</p>", variables, escape=True) == (
        "<style>p { color: red }</style><p>Dupont &amp; Fils</p>"
    )


def test_a_signature_ends_the_body_and_a_subject_with_a_line_break_is_refused():
    text = EmailText(subject="Invoice {document_number}", body="Hello", signature="Jane\nAccounts")
    subject, body, html_body = text.render({"document_number": "7"})
    assert (subject, html_body) == ("Invoice 7", None)
    assert body.endswith("\n-- \nJane\nAccounts\n")
    with pytest.raises(UnsafeHeader, match="subject"):
        EmailText(subject="{client_name}", body="").render({"client_name": "A\r\nBcc: victim@example.test"})


def test_a_line_break_in_a_header_is_refused_naming_the_header():
    with pytest.raises(UnsafeHeader, match="subject"):
        check_header("subject", "Hello\r\nBcc: victim@example.test")


def test_an_address_with_a_line_break_or_without_a_domain_is_refused_naming_its_field():
    with pytest.raises(UnsafeHeader, match="cc"):
        Addressing(to=["a@example.test"], cc=["b@example.test\nBcc: victim@example.test"]).checked()
    with pytest.raises(InvalidAddress, match="to: 'nobody' is not a valid e-mail address"):
        Addressing(to=["nobody"]).checked()


def test_a_shared_send_is_one_email_with_bcc_and_the_sender_copy_on_the_envelope_only():
    addressing = Addressing(
        to=["a@example.test"], cc=["c@example.test"], bcc=["b@example.test"], sender_copy="me@example.test"
    )
    [envelope] = addressing.envelopes()
    assert (envelope.to, envelope.cc) == (["a@example.test"], ["c@example.test"])
    assert envelope.recipients == ["a@example.test", "c@example.test", "b@example.test", "me@example.test"]
    assert envelope.required == ["a@example.test"]


def test_separate_sends_give_one_email_per_address_the_recipient_first():
    addressing = Addressing(
        to=["a@example.test"], cc=["c@example.test"], bcc=["b@example.test", "A@example.test"], separate=True
    )
    assert [(e.to, e.cc, e.recipients) for e in addressing.envelopes()] == [
        (["a@example.test"], [], ["a@example.test"]),
        (["c@example.test"], [], ["c@example.test"]),
        (["b@example.test"], [], ["b@example.test"]),
    ]


def test_none_as_tls_mode_is_for_a_server_on_this_machine_only():
    check_tls("127.0.0.1", TlsMode.NONE, [])
    check_tls("localhost", TlsMode.NONE, [])
    check_tls("mailpit", TlsMode.NONE, ["mailpit"])
    check_tls("smtp.example.test", TlsMode.STARTTLS, [])
    with pytest.raises(AccountInvalid, match="tls: 'none' is only for a server on this machine"):
        check_tls("smtp.example.test", TlsMode.NONE, [])


def test_the_attachment_is_named_after_the_document_number_without_path_separators():
    assert attachment_name("INV-0001") == "INV-0001.pdf"
    assert attachment_name("2026/01") == "2026_01.pdf"


def test_search_terms_are_the_lower_cased_words():
    assert search_terms("Invoice INV-0001", "Notices", None) == ["0001", "inv", "invoice", "notices"]


def test_the_message_parses_back_with_its_headers_bodies_and_pdf_and_bcc_stays_out():
    raw = build_message(
        sender="Société Générale <no-reply@publipost.test>",
        to=["a@example.test"],
        cc=[f"c{n}@example.test" for n in range(12)],
        reply_to="replies@publipost.test",
        subject="Facture INV-7 — échéance du mois prochain, merci de votre confiance renouvelée",
        body="Bonjour,\nvotre facture est jointe.\n",
        html_body="<p>Bonjour</p>",
        attachment=pdf_attachment(PDF, "INV-7.pdf"),
        message_id="<1@publipost.test>",
    )
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["From"].addresses[0].display_name == "Société Générale"
    assert message["Subject"] == "Facture INV-7 — échéance du mois prochain, merci de votre confiance renouvelée"
    assert len(message["Cc"].addresses) == 12 and "Bcc" not in message
    assert message["Reply-To"] == "replies@publipost.test" and message["Message-ID"] == "<1@publipost.test>"
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Bonjour,\nvotre facture est jointe.\n"
    assert message.get_body(("html",)).get_content().strip() == "<p>Bonjour</p>"
    attachment = next(message.iter_attachments())
    assert attachment.get_filename() == "INV-7.pdf" and attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == PDF
    assert not any(part.defects for part in message.walk())


def test_a_sealed_password_opens_only_with_its_key_and_its_account():
    key = PasswordSeal.new_key()
    seal = PasswordSeal(key)
    token = seal.seal("s3cret-é", "acme/account-1")
    assert "s3cret" not in token
    assert seal.open(token, "acme/account-1") == "s3cret-é"
    with pytest.raises(SealBroken):
        seal.open(token, "acme/account-2")
    with pytest.raises(SealBroken):
        PasswordSeal(PasswordSeal.new_key()).open(token, "acme/account-1")
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(SealBroken):
        seal.open(tampered, "acme/account-1")
    assert token.startswith("f1.")


def test_a_password_sealed_before_fernet_is_refused_asking_for_it_again():
    # The hand-made seal's code is gone (`reseal` of the release before migrated its tokens).
    key = "q4cmq1XDL4m0vU3ZbDBw1JdbbXqg7bi5M2Vt9lP7aE8="
    token = "s1.Mu7CKEQdOaVpnVxPZZsNIDufdKHNlhXlzLYYm0w9j_UdplhsKcHKjxsDIjgE1-rJdrPV7o4xi3f_"
    with pytest.raises(SealBroken, match="^sealed with the format used before Fernet, which this release no longer opens$"):
        PasswordSeal(key).open(token, "acme/account-1")


def test_the_history_window_grows_to_what_the_page_needs_at_the_rate_found():
    minute = timedelta(minutes=1)
    # 37 of 51 matches in a 16-minute window whose newest send is 9 minutes old: 7 minutes of sends.
    assert wider_history_window(16 * minute, 9 * minute, 37, 51) == 9 * minute + 7 * minute * 2
    # 20 of 1,001 in the last 10 minutes: at most sixteen times the span.
    assert wider_history_window(10 * minute, timedelta(0), 20, 1_001) == 160 * minute
    assert wider_history_window(4 * minute, None, 0, 51) == 16 * minute  # empty: four times
    assert wider_history_window(400 * 24 * 60 * minute, None, 0, 51) is None  # past two years: everything


@pytest.mark.parametrize("character", ["\x00", "\x0b", "\x0c", "\x1c", "\x7f", "\x85", "\u2028"])
def test_no_control_character_reaches_a_subject_an_address_or_the_attachment_name(character):
    """str.splitlines(), which the standard library's header folding uses, breaks at VT, FF, FS, NEL, U+2028..."""
    code = re.escape(f"U+{ord(character):04X}")
    with pytest.raises(UnsafeHeader, match=f"subject .* contains the control character {code}"):
        EmailText(subject="Invoice {document_number}", body="").render({"document_number": f"7{character}"})
    with pytest.raises(UnsafeHeader, match=f"document number .* contains the control character {code}"):
        attachment_name(f"INV{character}7")
    with pytest.raises(UnsafeHeader, match="attachment name"):
        pdf_attachment(PDF, f"INV{character}7.pdf")
    with pytest.raises(UnsafeHeader, match="subject"):
        build_message(
            sender="no-reply@publipost.test", to=["a@example.test"], cc=[], reply_to=None,
            subject=f"Invoice{character}", body="", html_body=None, attachment=pdf_attachment(PDF, "INV-7.pdf"),
            message_id="<1@publipost.test>",
        )
    with pytest.raises(UnsafeHeader, match="to"):
        build_message(
            sender="no-reply@publipost.test", to=[f"a@example.test{character}"], cc=[], reply_to=None,
            subject="Invoice", body="", html_body=None, attachment=pdf_attachment(PDF, "INV-7.pdf"),
            message_id="<1@publipost.test>",
        )


def test_an_address_outside_ascii_is_refused_saying_why():
    with pytest.raises(InvalidAddress, match="to: 'jöe@exämple.test' is not a valid e-mail address: only ASCII"):
        Addressing(to=["jöe@exämple.test"]).checked()
    assert Addressing(to=["joe@xn--exmple-cua.test"]).checked().to == ["joe@xn--exmple-cua.test"]


def test_to_cc_and_bcc_together_are_capped_naming_the_field_that_passes_the_cap():
    assert too_many_recipients(["a@x.test"], ["b@x.test"], ["c@x.test"], 3) is None
    field, message = too_many_recipients(["a@x.test"], ["b@x.test"], ["c@x.test", "d@x.test"], 3)
    assert field == "bcc"
    assert message == "to, cc and bcc name 4 addresses (1, 1, 2); at most 3 per send (PUBLIPOST_MAX_RECIPIENTS_PER_SEND)"
    assert too_many_recipients([f"{n}@x.test" for n in range(5)], [], [], 3)[0] == "to"


def test_a_subject_left_empty_is_the_document_types_preset_never_the_mailings_name():
    facts = DocumentFacts("F-7", "Staff list", "Ann", "C1", {"date": "15/11/2026"})
    assert EmailText.given("", "Hi", "staff-list").render(facts.variables())[0] == "Staff list F-7"
    assert EmailText.given("", "Hi", "invoice").subject == "Your invoice {document_number}"
    assert EmailText.given("", "Hi", None).subject == EmailText.given("", "Hi", "memo").subject
    assert EmailText.given("", "Hi", None).subject == "Your document {document_number}"
    assert EmailText.given("Hello {client_name}", "Hi", "invoice").subject == "Hello {client_name}"
    assert document_kind(None)[0] == "Document" and document_kind("Credit note")[0] == "Credit note"


def test_the_records_fields_fill_the_text_and_date_is_the_documents():
    facts = DocumentFacts("F-7", "invoice", "Ann", "C1", {"date": "15/11/2026", "amount_due": "120", "document_number": "x"})
    text = EmailText(subject="{document_name} <NUMFACT> of <DATEFACT>", body="Due: {amount_due}")
    assert text.render(facts.variables())[:2] == ("Invoice F-7 of 15/11/2026", "Due: 120")
    with pytest.raises(UnknownVariable, match=r"body: no value for \{branch\}"):
        EmailText(subject="s", body="{branch}").render(facts.variables())
