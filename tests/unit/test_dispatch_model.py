"""The moves of a dispatch, a delivery and a sending account, and the completion and pause rules run over
the in-memory repositories (no broker, no database)."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from publipost_contracts import DispatchCompleted, DispatchPaused
from publipost_contracts.reads import DocumentView, FailureView
from publipost_dispatch.completion import complete_if_done, pause
from publipost_dispatch.domain import AccountInvalid, Addressing, DeliveryState, DispatchStatus, TlsMode
from publipost_dispatch.model import (
    AlreadyFinal,
    Delivery,
    Dispatch,
    NotClaimable,
    NotHeld,
    NotPaused,
    NotSending,
    SendingAccount,
)
from publipost_dispatch.repository import ACCOUNTS, DELIVERIES, DISPATCHES
from publipost_refusals import Conflict

from tests.unit.fakes.dispatch import FakeDeliveryRepository, FakeDispatchRepository

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def a_dispatch(status: DispatchStatus = DispatchStatus.SENDING, **fields: Any) -> Dispatch:
    return Dispatch(
        id="acme:d1", tenant_id="acme", dispatch_id="d1", mailing_id="m1", correlation_id="c1", status=status,
        created_at=NOW, pause_after_errors=3, **fields,
    )  # fmt: skip


def a_delivery(n: int, state: DeliveryState = DeliveryState.QUEUED, **fields: Any) -> Delivery:
    return Delivery(
        id=f"acme:d1:{n}", tenant_id="acme", dispatch_key="acme:d1", dispatch_id="d1", document_id=f"doc-{n}",
        document_number=f"INV-{n}", mailing_id="m1", mailing_name="Notices", index=n, state=state, created_at=NOW,
        **fields,
    )  # fmt: skip


# --- dispatch --------------------------------------------------------------------------


def test_a_sending_dispatch_pauses_and_resumes_with_its_errors_forgotten():
    dispatch = a_dispatch(errors=3)
    assert dispatch.too_many_errors(3) and not dispatch.too_many_errors(2)

    dispatch.pause("paused after 3 SMTP errors")
    assert dispatch.status is DispatchStatus.PAUSED and dispatch.reason == "paused after 3 SMTP errors"
    assert not dispatch.takes_sends

    dispatch.resume()
    assert dispatch.status is DispatchStatus.SENDING and dispatch.reason is None
    assert (dispatch.errors, dispatch.resumptions) == (0, 1)


@pytest.mark.parametrize("status", [DispatchStatus.FANNING_OUT, DispatchStatus.PAUSED, DispatchStatus.COMPLETED])
def test_only_a_sending_dispatch_pauses(status):
    with pytest.raises(NotSending):
        a_dispatch(status).pause("errors")


def test_a_dispatch_not_paused_is_not_resumed_and_says_so_as_a_conflict():
    with pytest.raises(NotPaused, match="dispatch 'd1' is sending, not paused") as refused:
        a_dispatch().resume()
    assert isinstance(refused.value, Conflict)


def test_a_refused_or_fanning_out_dispatch_does_not_complete():
    for status in (DispatchStatus.FANNING_OUT, DispatchStatus.REFUSED):
        assert not a_dispatch(status).completable
    paused = a_dispatch(DispatchStatus.PAUSED)
    paused.complete(sent=2, failed=1, uncertain=0, now=NOW)
    assert (paused.status, paused.sent, paused.failed, paused.completed_at) == (DispatchStatus.COMPLETED, 2, 1, NOW)


def test_a_dispatch_stored_before_its_later_fields_existed_loads():
    stored = {
        "_id": "acme:d1", "tenant_id": "acme", "dispatch_id": "d1", "mailing_id": "m1", "correlation_id": "c1",
        "status": "completed", "created_at": NOW, "text": {"subject": "{document_name}", "body": "Hello"},
    }  # fmt: skip
    dispatch = DISPATCHES.load(stored)
    assert dispatch.status is DispatchStatus.COMPLETED and dispatch.text.signature == "" and dispatch.to == []
    assert dispatch.errors == 0 and dispatch.resumptions == 0 and dispatch.request is None


# --- delivery --------------------------------------------------------------------------


def test_a_delivery_is_claimed_given_back_and_claimed_again():
    delivery = a_delivery(1)
    delivery.claim_for("replica-a", 60, NOW)
    assert (delivery.state, delivery.holder, delivery.attempts) == (DeliveryState.SENDING, "replica-a", 1)
    with pytest.raises(NotClaimable):
        delivery.claim_for("replica-b", 60, NOW)  # its lease runs
    with pytest.raises(NotHeld):
        delivery.release("replica-b", "not mine")

    delivery.release("replica-a", "451 try later")
    assert (delivery.state, delivery.holder, delivery.last_error) == (DeliveryState.QUEUED, None, "451 try later")
    delivery.claim_for("replica-b", 60, NOW)
    assert delivery.attempts == 2


def test_a_send_given_back_untried_is_queued_as_before_its_claim():
    delivery = a_delivery(1)
    delivery.claim_for("replica-a", 60, NOW)
    with pytest.raises(NotHeld):
        delivery.give_back("replica-b")
    delivery.give_back("replica-a")  # its dispatch paused before its turn: not an attempt
    assert (delivery.state, delivery.holder, delivery.lease_until, delivery.attempts) == (
        DeliveryState.QUEUED, None, None, 0
    )  # fmt: skip


def test_the_send_of_a_dead_replica_is_claimed_once_its_lease_ended():
    delivery = a_delivery(1)
    delivery.claim_for("replica-a", 60, NOW)
    delivery.claim_for("replica-b", 60, NOW + timedelta(seconds=61))
    assert delivery.holder == "replica-b"


def test_an_outcome_is_recorded_once_with_what_the_history_shows():
    delivery = a_delivery(1, subject="Invoice INV-1")
    delivery.claim_for("replica-a", 60, NOW)
    delivery.record(
        DeliveryState.SENT, addressing=Addressing(to=["a@example.test"], sender_copy="me@example.test"),
        smtp_reply="250 ok", message_id="<m@x>",
    )  # fmt: skip
    assert (delivery.state, delivery.to, delivery.bcc, delivery.subject) == (
        DeliveryState.SENT, ["a@example.test"], ["me@example.test"], "Invoice INV-1"
    )  # fmt: skip
    assert "status=sent" in delivery.terms and "status=queued" not in delivery.terms
    with pytest.raises(AlreadyFinal):
        delivery.record(DeliveryState.FAILED, reason="a second handler")



def test_an_outcome_keeps_the_rule_that_gave_the_address_and_whether_the_address_failed():
    refused = a_delivery(1)
    refused.claim_for("replica-a", 60, NOW)
    refused.record(
        DeliveryState.FAILED, reason="550 <old@reject.test>: mailbox unavailable",
        addressing=Addressing(to=["old@reject.test"], rule="record"), address_failed=True,
    )  # fmt: skip
    other = a_delivery(2)
    other.claim_for("replica-a", 60, NOW)
    other.record(DeliveryState.FAILED, reason="PDF missing")

    assert (refused.address_rule, refused.failure().kind) == ("record", "address")
    assert other.failure().kind is None


def test_a_document_whose_address_failed_before_asks_the_directory_first():
    def delivery_of(last_failure: FailureView | None) -> Delivery:
        document = DocumentView(
            id="doc-1", index=0, record_id="r1", customer_number="C1", email="old@reject.test", document_number="INV-1",
            recipient_name=None, status="converted", pdf_blob_id="p1", docx_blob_id="w1", page_count=1, error=None,
            last_failure=last_failure,
        )  # fmt: skip
        mailing = SimpleNamespace(
            id="m1", name="Notices (not sent by e-mail)", created_at=NOW, format="pdf", einvoices=False
        )
        return Delivery.new(
            delivery_id="acme:d2:doc-1", kind="dispatch", dispatch_key="acme:d2", dispatch_id="d2", tenant_id="acme",
            correlation_id="c2", document_type=None, mailing=mailing, document=document, subject=None,
        )  # fmt: skip

    assert delivery_of(FailureView(reason="550 refused", kind="address")).prefer_directory
    assert not delivery_of(FailureView(reason="the server hung up")).prefer_directory
    assert not delivery_of(None).prefer_directory
    assert delivery_of(None).docx_blob_id == "w1"


def test_a_delivery_stored_by_an_older_version_loads():
    stored = {
        "_id": "old-1", "kind": "dispatch", "dispatch_key": "acme:d-old", "dispatch_id": "d-old", "tenant_id": "acme",
        "correlation_id": "c", "document_type": "invoice", "mailing_id": "m-old", "mailing_name": "Notices",
        "document_id": "doc-1", "index": 1, "document_number": "INV-0001", "state": "sent", "reason": None,
        "attempts": 1, "to": ["c1@example.test"], "subject": "Invoice INV-0001", "terms": ["inv"],
        "pdf_blob_id": None, "created_at": NOW, "finished_at": NOW,
    }  # fmt: skip
    delivery = DELIVERIES.load(stored)
    assert delivery.state is DeliveryState.SENT and delivery.cc == [] and delivery.accepted == {}
    assert "type=invoice" in delivery.history_terms() and "document=doc-1" in delivery.history_terms()


# --- sending account -------------------------------------------------------------------


def an_account(**fields: Any) -> SendingAccount:
    made = {
        "id": "a1", "tenant_id": "acme", "name": "Main", "host": "smtp.example.test", "port": 587,
        "tls": TlsMode.STARTTLS, "from_address": "billing@example.test", "created_at": NOW, "updated_at": NOW,
    }  # fmt: skip
    return SendingAccount(**made | fields)


def test_a_stored_password_goes_only_where_it_was_given_for():
    before = an_account(password_sealed="sealed")
    before.check_password_kept(an_account(name="Renamed"), password_given=False)
    with pytest.raises(AccountInvalid, match="host changed"):
        before.check_password_kept(an_account(host="evil.example.test"), password_given=False)
    before.check_password_kept(an_account(host="new.example.test"), password_given=True)


def test_an_account_stored_before_sharing_existed_is_shared_with_every_role_that_sends():
    stored = ACCOUNTS.dump(an_account())
    del stored["shared_with_roles"], stored["shared_with_users"], stored["owner"]
    account = ACCOUNTS.load(stored)
    assert account.sharing.roles == {"operator", "integrator"} and account.sharing.owner is None
    account.make_personal("alice")
    assert account.sharing.owner == "alice" and not account.sharing.roles


# --- completion and pause over the in-memory repositories ------------------------------


@dataclass
class Bus:
    published: list[Any] = field(default_factory=list)

    async def publish(self, event: Any) -> None:
        self.published.append(event)


async def a_context(dispatch: Dispatch, deliveries: list[Delivery]) -> SimpleNamespace:
    ctx = SimpleNamespace(dispatches=FakeDispatchRepository(), deliveries=FakeDeliveryRepository(), bus=Bus())
    await ctx.dispatches.create(dispatch)
    await ctx.deliveries.add_many(deliveries)
    return ctx


async def test_a_dispatch_completes_once_every_document_has_its_outcome():
    ctx = await a_context(
        a_dispatch(),
        [a_delivery(1, DeliveryState.SENT), a_delivery(2, DeliveryState.FAILED, reason="550"), a_delivery(3)],
    )
    await complete_if_done(ctx, "acme:d1")
    assert ctx.bus.published == []  # document 3 is still queued

    claimed = await ctx.deliveries.claim_and_get("acme:d1:3", "replica-a", 60)
    claimed.record(DeliveryState.UNCERTAIN, reason="the server hung up")
    assert await ctx.deliveries.finish(claimed)
    await complete_if_done(ctx, "acme:d1")

    [completed] = ctx.bus.published
    assert isinstance(completed, DispatchCompleted)
    assert (completed.sent, completed.failed, completed.uncertain) == (1, 2, 1)
    assert [f.document_id for f in completed.failures] == ["doc-2", "doc-3"]
    stored = await ctx.dispatches.get("acme:d1")
    assert (stored.status, stored.sent, stored.failed) == (DispatchStatus.COMPLETED, 1, 2)


async def test_a_pause_is_announced_once_and_only_for_a_sending_dispatch():
    ctx = await a_context(a_dispatch(), [a_delivery(1, DeliveryState.SENT), a_delivery(2)])
    await pause(ctx, "acme:d1", "paused after 3 SMTP errors")
    await pause(ctx, "acme:d1", "paused after 4 SMTP errors")  # a send that found too many errors too

    [paused] = ctx.bus.published
    assert isinstance(paused, DispatchPaused) and (paused.reason, paused.sent) == ("paused after 3 SMTP errors", 1)
    assert paused.queued == 1  # what resuming sends
    assert (await ctx.dispatches.get("acme:d1")).status is DispatchStatus.PAUSED
