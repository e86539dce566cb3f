"""A plain e-mail to a client selection (issue 16, point 10): a garage writes "your car's inspection is due" to
the recipients of a directory segment, nothing attached, each e-mail filled from its recipient's record. The
rules here, then the whole run through dispatch's composition root with its pieces in memory."""

import email
import email.policy
from datetime import date

import pytest
from faststream.exceptions import SubscriberNotFound
from publipost_contracts import DispatchCompleted, DispatchRefused, DocumentSent, EmailsRequested
from publipost_contracts.reads import RecipientRecord
from publipost_dispatch.accounts import Accounts
from publipost_dispatch.app import build
from publipost_dispatch.domain import (
    DeliveryState,
    DispatchStatus,
    EmailText,
    LetterFacts,
    NotALetterVariable,
    UnknownVariable,
    check_letter_text,
    delivery_id_for,
    dispatch_key,
)
from publipost_dispatch.model import TenantSending
from publipost_dispatch.settings import DispatchSettings

from tests.unit.fakes.dispatch import (
    FakeAccountRepository,
    FakeDeliveryRepository,
    FakeDirectory,
    FakeDispatchRepository,
    FakeResolver,
    FakeTenantSendingRepository,
)
from tests.unit.fakes.smtp import FakeSenders, FakeSmtpServer
from tests.unit.fakes.storage import FakeStorage
from tests.unit.in_memory import InMemoryService


def client(number: str, email_address: str | None, name: str, **attributes: str) -> RecipientRecord:
    """A line of the directory's GET /segments/{id}/recipients."""
    return RecipientRecord.model_validate(
        {"id": number, "customer_number": number, "email": email_address, "name": name, "cc": [], "contacts": [],
         "postal_code": "69003", "locality": None, "promotional_consent": False, "attributes": attributes}
    )  # fmt: skip


def test_a_letter_names_its_recipient_s_name_number_fields_and_attributes_and_the_day_it_was_asked():
    facts = LetterFacts.of(
        client("C7", "ann@example.test", "Ann Martin", inspection_due="2027-01-15"), date(2026, 12, 3)
    )
    variables = facts.variables()

    assert variables["client_name"] == "Ann Martin" and variables["customer_number"] == "C7"
    assert (variables["inspection_due"], variables["postal_code"], variables["date"]) == (
        "2027-01-15",
        "69003",
        "03/12/2026",
    )
    assert "locality" not in variables and "cc" not in variables  # no value, and a list: nothing to name
    text = EmailText("{client_name}, your inspection is due", "By {inspection_due}, at our {postal_code} garage.")
    assert text.render(variables)[:2] == ("Ann Martin, your inspection is due", "By 2027-01-15, at our 69003 garage.")


def test_a_letter_s_text_naming_what_only_a_document_has_is_refused_naming_field_and_variable():
    check_letter_text(EmailText("{client_name}", "Due by {inspection_due} ({date}), {customer_number}."))
    with pytest.raises(NotALetterVariable, match=r"^subject: a plain e-mail has no document, so nothing fills "
                                                 r"\{document_number\}"):  # fmt: skip
        check_letter_text(EmailText("Invoice {document_number}", "Hello"))
    with pytest.raises(NotALetterVariable, match=r"^signature: .*\{document_name\}, \{document_number\}"):
        check_letter_text(EmailText("Hello", "Hello", signature="<NUMFACT> {document_name}"))


def test_a_recipient_without_the_attribute_its_letter_names_fails_alone_saying_so():
    facts = LetterFacts.of(client("C8", "bob@example.test", "Bob"), date(2026, 12, 3))
    with pytest.raises(UnknownVariable) as raised:
        EmailText("Hello", "Due by {inspection_due}").render(facts.variables(), "this recipient's record")
    assert str(raised.value) == "body: no value for {inspection_due} in this recipient's record"


KEY = dispatch_key("garage", "letter-1")
MEMBERS = [
    client("C1", "ann@example.test", "Ann Martin", inspection_due="2027-01-15"),
    client("C2", "bob@example.test", "Bob Durand", inspection_due="2027-01-20"),
    client("C3", None, "Cid Petit", inspection_due="2027-01-02"),
]


def letter(**changes: object) -> EmailsRequested:
    fields: dict[str, object] = {
        "tenant_id": "garage", "correlation_id": "c1", "email_id": "letter-1", "segment_id": "due-in-january",
        "subject": "{client_name}, your car's inspection is due",
        "body": "Dear {client_name},\nyour car is due for its inspection by {inspection_due}.\n", **changes,
    }  # fmt: skip
    return EmailsRequested.model_validate(fields)


def letters_service(server: FakeSmtpServer, sending: FakeTenantSendingRepository | None = None) -> InMemoryService:
    settings = DispatchSettings(smtp_host="smtp.example.test")
    return InMemoryService(
        build(settings), storage=FakeStorage(), dispatches=FakeDispatchRepository(), deliveries=FakeDeliveryRepository(),
        accounts=Accounts(FakeAccountRepository(), FakeTenantSendingRepository(), settings),
        sending=sending or FakeTenantSendingRepository(), senders=FakeSenders(server), resolver=FakeResolver(),
        directory=FakeDirectory({("garage", "due-in-january"): MEMBERS}),
    )  # fmt: skip


async def test_each_member_of_the_segment_gets_its_own_letter_with_nothing_attached():
    server = FakeSmtpServer()
    async with letters_service(server) as dispatch:
        await dispatch.deliver(letter())
        await dispatch.ctx.completions.wait()

        received = {
            tuple(to): email.message_from_bytes(raw, policy=email.policy.default) for to, raw in server.received
        }
        assert sorted(received) == [("ann@example.test",), ("bob@example.test",)]
        ann = received[("ann@example.test",)]
        assert ann["Subject"] == "Ann Martin, your car's inspection is due"
        assert ann.get_content_type() == "text/plain" and list(ann.iter_attachments()) == []
        assert "by 2027-01-15" in ann.get_content()

        announced = dispatch.published(DispatchCompleted)  # a completion announced again keeps its event id
        assert len({e.event_id for e in announced}) == 1
        completed = announced[0]
        assert (completed.sent, completed.failed, completed.regroup) == (2, 1, False)  # merge leaves it alone
        assert (completed.mailing_id, completed.segment_id) == (None, "due-in-january")
        assert [f.document_id for f in completed.failures] == ["C3"]  # the customer number: no address
        assert dispatch.published(DocumentSent) == []  # there is no document to mark sent
        stored = await dispatch.ctx.deliveries.get(delivery_id_for(KEY, "C1"))
        assert (stored.state, stored.attached, stored.document_number, stored.customer_number) == (
            DeliveryState.SENT, "none", "", "C1"
        )  # fmt: skip
        view = await dispatch.ctx.dispatches.get(KEY)
        assert (view.status, view.total, view.mailing_id, view.segment_id) == (
            DispatchStatus.COMPLETED, 3, None, "due-in-january"
        )  # fmt: skip


async def test_an_unknown_segment_is_refused_and_said_on_the_bus_naming_segment_id():
    async with letters_service(FakeSmtpServer()) as dispatch:
        with pytest.raises(SubscriberNotFound):  # dead-lettered, which the in-memory broker cannot
            await dispatch.deliver(letter(segment_id="another-tenant-s"))

        (refused,) = dispatch.published(DispatchRefused)
        assert refused.reason == "segment_id: no segment 'another-tenant-s' for this tenant"
        assert (refused.dispatch_id, refused.mailing_id, refused.segment_id) == ("letter-1", None, "another-tenant-s")
        stored = await dispatch.ctx.dispatches.get(KEY)
        assert (stored.status, stored.reason) == (DispatchStatus.REFUSED, refused.reason)


async def test_a_letter_naming_a_document_variable_is_refused_before_anything_goes():
    server = FakeSmtpServer()
    async with letters_service(server) as dispatch:
        with pytest.raises(SubscriberNotFound):
            await dispatch.deliver(letter(subject="Invoice {document_number}"))

        (refused,) = dispatch.published(DispatchRefused)
        assert refused.reason.startswith("subject: a plain e-mail has no document, so nothing fills {document_number}")
        assert server.received == [] and dispatch.ctx.deliveries.stored == {}


async def test_a_tenant_that_turned_e_mail_off_has_its_letter_refused_without_asking_the_directory():
    sending = FakeTenantSendingRepository()
    await sending.save(TenantSending(id="garage", email_enabled=False))
    async with letters_service(FakeSmtpServer(), sending) as dispatch:
        with pytest.raises(SubscriberNotFound):
            await dispatch.deliver(letter())

        (refused,) = dispatch.published(DispatchRefused)
        assert refused.reason.startswith("e-mail distribution is turned off for tenant 'garage'")
        assert dispatch.ctx.directory.asked == 0


def test_a_letter_says_something_or_names_its_e_mail_template():
    with pytest.raises(ValueError, match="give a subject and a body, or an email_template_id"):
        letter(subject="", body="")
    assert letter(subject="", body="", email_template_id="inspection").email_template_id == "inspection"
