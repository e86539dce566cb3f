"""What a campaign's send needs of merge and dispatch, through their composition roots with fakes: a
campaign's published mailing is not regrouped, its e-mails name the occurrence's date, and a refused
dispatch says why on the bus (issue 16, point 1). tests/integration/test_scheduler_campaign_sends.py runs
the same story against the real services."""

from datetime import date

import pytest
from faststream.exceptions import SubscriberNotFound
from publipost_contracts import DispatchCompleted, DispatchRefused, DispatchRequested, Failure, MailingRegrouped
from publipost_contracts.reads import DocumentView, MailingView
from publipost_dispatch.accounts import Accounts
from publipost_dispatch.app import build
from publipost_dispatch.delivery import dispatch_delivery
from publipost_dispatch.domain import EmailText
from publipost_dispatch.model import Dispatch
from publipost_dispatch.settings import DispatchSettings
from publipost_merge.domain import MailingStatus, document_id_for

from tests.unit.fakes.dispatch import (
    FakeAccountRepository,
    FakeDeliveryRepository,
    FakeDispatchRepository,
    FakeTenantSendingRepository,
)
from tests.unit.fakes.smtp import FakeSmtpServer
from tests.unit.fakes.storage import FakeStorage
from tests.unit.in_memory import InMemoryService
from tests.unit.test_dispatch_handlers import KEY, NOW, dispatch_service, send
from tests.unit.test_merge_handlers import merge_service, pdfs


async def test_a_campaigns_dispatch_leaves_its_published_mailing_ready_for_the_next_occurrence():
    merge, mailing_id = await merge_service(3)
    async with merge:
        await merge.deliver(pdfs(mailing_id, range(3)))
        outcome = DispatchCompleted(
            tenant_id="acme", correlation_id="c-1", dispatch_id="campaign-c-20261201T090000Z", mailing_id=mailing_id,
            sent=2, failed=1, failures=[Failure(document_id=document_id_for(mailing_id, 1), reason="550")],
            regroup=False,
        )  # fmt: skip
        await merge.deliver(outcome)

        assert merge.published(MailingRegrouped) == []
        source = await merge.ctx.mailings.get(mailing_id)
        assert (source.status, source.documents, source.replaced_by) == (MailingStatus.READY, 3, None)


async def test_a_campaigns_dispatch_completes_without_regrouping():
    async with await dispatch_service(2, FakeSmtpServer()) as dispatch:
        stored = await dispatch.ctx.dispatches.get(KEY)
        stored.regroup = False
        await dispatch.ctx.dispatches.save(stored, "regroup")
        for n in range(2):
            await dispatch.deliver(send(n))
        await dispatch.ctx.completions.wait()

        (completed,) = dispatch.published(DispatchCompleted)
        assert (completed.sent, completed.regroup) == (2, False)


def test_a_campaign_that_advances_the_date_names_the_occurrences_day_in_the_e_mail_not_the_documents():
    request = DispatchRequested(
        tenant_id="acme", correlation_id="c1", dispatch_id="campaign-c-20261208T090000Z", mailing_id="m1",
        document_type="staff_list", document_date=date(2026, 12, 8), regroup=False,
    )  # fmt: skip
    dispatch = Dispatch.requested(KEY, request, NOW)
    dispatch.prepare("Staff list", EmailText("Staff list {document_number} of {date}", "Here it is."), 25)
    mailing = MailingView(
        id="m1", name="Staff list", status="ready", sendable=True, created_at=NOW, output="pdf",
        documents=1, rendered=1, failed=0,
    )  # fmt: skip
    document = DocumentView(
        id="doc-1", index=0, record_id="r1", customer_number="C1", email="one@example.test", document_number="INV-1",
        recipient_name="One", status="converted", pdf_blob_id="pdf-1", docx_blob_id=None, page_count=1, error=None,
        fields={"date": "01/12/2026"},  # the day the published mailing was made
    )  # fmt: skip

    delivery = dispatch_delivery(dispatch, mailing, document)

    assert delivery.subject == "Staff list INV-1 of 08/12/2026"
    assert delivery.facts().variables()["date"] == "08/12/2026"  # what the send fills again
    assert Dispatch.requested(KEY, request.model_copy(update={"document_date": None}), NOW).as_sent(document) == document


class NoMailings:
    """merge, answering that the tenant has no such mailing."""

    async def mailing(self, tenant_id: str, mailing_id: str) -> None:
        return None


async def test_a_dispatch_that_cannot_go_says_why_on_the_bus():
    settings = DispatchSettings(smtp_host="smtp.example.test", smtp_from="notices@acme.example")
    service = InMemoryService(
        build(settings),
        storage=FakeStorage(),
        dispatches=FakeDispatchRepository(),
        deliveries=FakeDeliveryRepository(),
        accounts=Accounts(FakeAccountRepository(), FakeTenantSendingRepository(), settings),
        sending=FakeTenantSendingRepository(),
        merge=NoMailings(),
    )
    async with service as dispatch:
        request = DispatchRequested(tenant_id="acme", correlation_id="c1", dispatch_id="d-unknown", mailing_id="nope")
        # The request is dead-lettered too, which the in-memory broker, without a dead-letter queue, refuses.
        with pytest.raises(SubscriberNotFound):
            await dispatch.deliver(request)

        (refused,) = dispatch.published(DispatchRefused)
        assert (refused.dispatch_id, refused.mailing_id) == ("d-unknown", "nope")
        assert refused.reason.startswith("mailing_id: no mailing 'nope'")
