"""Which address a document goes to: the tenant's order of rules, tried in turn, without a database."""

from dataclasses import replace

import pytest
from publipost_recipient_directory.domain import (
    DEFAULT_ORDER,
    AddressRequest,
    Recipient,
    RecipientContact,
    check_order,
    is_valid_address,
    resolve,
    rules_in_order,
)

DUPONT = Recipient(
    tenant_id="acme",
    customer_number="C1",
    email="compta@dupont.example",
    cc=["direction@dupont.example"],
    billing_email="factures@dupont.example",
    main_email="contact@dupont.example",
    contacts=[
        RecipientContact(email="paul@dupont.example", correspondence_types=["due_notice"]),
        RecipientContact(email="marie@dupont.example", correspondence_types=["reminder", "due_notice"]),
        RecipientContact(email="zoe@dupont.example", correspondence_types=["reminder"]),
    ],
)


def ask(record_email=None, customer_number="C1", correspondence_type=None):
    return AddressRequest(record_email, customer_number, correspondence_type)


def test_the_record_address_wins_over_the_directory():
    resolution = resolve(DEFAULT_ORDER, ask("Own@Example.TEST"), DUPONT)

    assert (resolution.email, resolution.rule) == ("Own@example.test", "record")
    assert resolution.cc == ["direction@dupont.example"]


def test_a_malformed_record_address_falls_back_to_the_directory():
    resolution = resolve(DEFAULT_ORDER, ask("a@@x"), DUPONT)

    assert (resolution.email, resolution.rule) == ("compta@dupont.example", "directory")


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        (replace(DUPONT, email=None), ("factures@dupont.example", "billing")),
        (replace(DUPONT, email=None, billing_email=None), ("contact@dupont.example", "main")),
    ],
)
def test_billing_then_main_address_when_the_directory_has_no_e_mail(recipient, expected):
    resolution = resolve(DEFAULT_ORDER, ask(), recipient)

    assert (resolution.email, resolution.rule) == expected


def test_the_tenant_order_decides():
    resolution = resolve(["main", "billing", "record"], ask("own@example.test"), DUPONT)

    assert (resolution.email, resolution.rule) == ("contact@dupont.example", "main")


def test_a_correspondence_type_picks_the_first_contact_receiving_it():
    assert resolve(DEFAULT_ORDER, ask(correspondence_type="reminder"), DUPONT).email == "marie@dupont.example"
    assert resolve(DEFAULT_ORDER, ask(correspondence_type="Due_Notice"), DUPONT).email == "paul@dupont.example"


def test_the_contact_for_the_correspondence_type_asked_comes_before_the_record():
    assert rules_in_order(DEFAULT_ORDER, "reminder") == ["contact", "record", "directory", "billing", "main"]
    assert rules_in_order(["billing", "record", "main"], "reminder") == ["contact", "billing", "record", "main"]
    assert rules_in_order(DEFAULT_ORDER, None) == list(DEFAULT_ORDER)
    assert rules_in_order(DEFAULT_ORDER, " ") == list(DEFAULT_ORDER)
    resolution = resolve(DEFAULT_ORDER, ask("own@example.test", correspondence_type="reminder"), DUPONT)
    assert (resolution.email, resolution.rule) == ("marie@dupont.example", "contact")


def test_without_a_matching_contact_the_next_rules_apply():
    resolution = resolve(DEFAULT_ORDER, ask(correspondence_type="newsletter"), DUPONT)

    assert (resolution.email, resolution.rule) == ("compta@dupont.example", "directory")


def test_no_address_anywhere_lists_every_rule_and_why():
    resolution = resolve(
        DEFAULT_ORDER,
        ask(correspondence_type="reminder"),
        Recipient(tenant_id="acme", customer_number="C1", cc=["x@y.test"]),
    )

    assert (resolution.email, resolution.rule, resolution.cc) == (None, None, [])
    assert resolution.reason == (
        "contact: customer C1 has no contact for correspondence type 'reminder'; "
        "record: the record has no e-mail; "
        "directory: customer C1 has no e-mail in the recipient directory; "
        "billing: customer C1 has no billing e-mail in the recipient directory; "
        "main: customer C1 has no main e-mail in the recipient directory"
    )


def test_rules_failing_for_the_same_reason_are_named_together():
    unknown = resolve(DEFAULT_ORDER, ask("a@@x"), None)
    anonymous = resolve(["directory", "main"], ask(customer_number=None), None)

    assert unknown.reason == (
        "record: the record's e-mail 'a@@x' is not a valid address; "
        "directory, billing, main: customer C1 is not in the recipient directory"
    )
    assert anonymous.reason == "directory, main: the record has no customer number to look up"


def test_an_order_holds_known_rules_once_and_never_contact():
    assert check_order(["main", "record"]) == ["main", "record"]
    for bad, words in [
        ([], "at least one"),
        (["contact"], "not placed by hand"),
        (["record", "fax"], "unknown rules"),
        (["record", "record"], "once"),
    ]:
        with pytest.raises(ValueError, match=words):
            check_order(bad)


def test_address_syntax():
    assert is_valid_address("first.last+tag@sub.example.test")
    for bad in ("", "a", "a@b", "a b@c.test", "<a@b.test>", "a@b.test,c@d.test"):
        assert not is_valid_address(bad), bad


def test_after_a_refused_record_address_the_directory_comes_first_and_the_record_last():
    refused_before = AddressRequest("old@reject.test", "C1", prefer_directory=True)

    resolution = resolve(DEFAULT_ORDER, refused_before, DUPONT)

    assert (resolution.email, resolution.rule) == ("compta@dupont.example", "directory")
    assert rules_in_order(DEFAULT_ORDER, "reminder", prefer_directory=True) == [
        "contact", "directory", "billing", "main", "record"
    ]  # fmt: skip


def test_a_refused_record_address_is_still_tried_when_the_directory_has_nothing():
    refused_before = AddressRequest("old@example.test", "C9", prefer_directory=True)

    resolution = resolve(DEFAULT_ORDER, refused_before, None)

    assert (resolution.email, resolution.rule, resolution.format) == ("old@example.test", "record", None)


@pytest.mark.parametrize(
    ("preferred_type", "asked_type", "expected"),
    [
        ("invoice", "invoice", "docx"),
        ("Invoice", "invoice ", "docx"),
        ("invoice", "order", None),  # none stated: the document goes as its mailing makes it
        ("invoice", None, None),
        (None, "order", "docx"),  # a format without a document type holds for every type
    ],
)
def test_the_format_a_client_wants_holds_for_its_document_type(preferred_type, asked_type, expected):
    client = replace(DUPONT, document_type=preferred_type, format="docx")

    resolution = resolve(DEFAULT_ORDER, AddressRequest(None, "C1", document_type=asked_type), client)

    assert resolution.format == expected
