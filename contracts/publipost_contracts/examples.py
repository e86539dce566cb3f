"""One example of every message, as an integrating system would see it: the AsyncAPI document shows them
(contracts/generate_asyncapi.py) and a contract test checks each one is valid against its model."""

from datetime import UTC, datetime
from uuid import UUID

from .envelope import Event
from .events import (
    AddressAnswer,
    AddressQuestion,
    CampaignFired,
    CombinedPart,
    DeliveryRecorded,
    DispatchCompleted,
    DispatchPaused,
    DispatchRefused,
    DispatchRequested,
    DispatchResumed,
    DocumentSent,
    DocumentSideEffect,
    DocumentsRendered,
    EmailsRequested,
    Failure,
    MailingRegrouped,
    MergeCompleted,
    MergeRejected,
    MergeRequested,
    Problem,
    RecipientsResolved,
    RenderItem,
    RenderRequested,
    RenderResult,
    Requester,
    ResolveRecipients,
    SendRequested,
    TemplateRegistered,
)

_AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
_TEMPLATE = "6a1f0c4e-2b7d-4f7e-9a51-0c3e5d1b2a10"
_MAILING = "3d9b5f0a-8c2e-4a61-b7d4-1e0f9a6c5b21"
_DISPATCH = "dispatch-2026-11-premiums"
_REQUESTER = Requester(subject="c.martin", roles=["operator"], email="c.martin@acme-insurance.example")
_SEGMENT = "0b8e6d2c-4f1a-4c3b-9d7e-5a6f7b8c9d03"
_DOCUMENT = "9f4e2a71-5c3b-4d8e-a0f6-7b1c2d3e4f52"
_PDF = "674b1f2e9c0d4a5b6c7d8e9f"
_DOCX = "674b1f2e9c0d4a5b6c7d8ea0"


def _envelope(n: int, *, causation: int | None = None) -> dict[str, object]:
    return {
        "event_id": UUID(int=n),
        "occurred_at": _AT,
        "tenant_id": "acme-insurance",
        "correlation_id": "crm-batch-2026-11-30",
        "causation_id": str(UUID(int=causation)) if causation else None,
    }


EXAMPLES: dict[type[Event], Event] = {
    example.__class__: example
    for example in (
        TemplateRegistered(
            **_envelope(1),
            template_id=_TEMPLATE,
            name="Premium notice",
            version=3,
            fields=["name", "address", "postal_code", "city", "contract", "premium", "tax", "amount_due", "date"],
            custom_fields=["signatory"],
            template_type="due_notice",
        ),
        MergeRequested(
            **_envelope(2),
            request_id="crm-premiums-2026-11",
            template_id=_TEMPLATE,
            name="Premium notices November 2026",
            records=[
                {
                    "id": "C00042",
                    "customer_number": "C00042",
                    "document_number": "DN-2026-0042",
                    "name": "Garage Martin SARL",
                    "email": "accounts@garage-martin.example",
                    "address": "12 rue des Lilas",
                    "postal_code": "69003",
                    "city": "Lyon",
                    "contract": "CTR-1042",
                    "premium": 540,
                    "tax": 108,
                    "amount_due": 648,
                }
            ],
            custom_fields={"signatory": "Claire Martin, Customer Service"},
        ),
        MergeRejected(
            **_envelope(3, causation=2),
            request_id="crm-premiums-2026-11",
            problems=[Problem(field="records[].amount_due", message="missing: the template uses it", record_index=7)],
        ),
        DocumentSideEffect(
            **_envelope(4, causation=2),
            mailing_id=_MAILING,
            document_id=_DOCUMENT,
            record_id="C00042",
            template_type="due_notice",
        ),
        RenderRequested(
            **_envelope(5, causation=2),
            mailing_id=_MAILING,
            chunk=0,
            documents=[RenderItem(document_id=_DOCUMENT, docx_blob_id=_DOCX)],
        ),
        DocumentsRendered(
            **_envelope(6, causation=5),
            mailing_id=_MAILING,
            chunk=0,
            results=[RenderResult(document_id=_DOCUMENT, pdf_blob_id=_PDF, page_count=2)],
        ),
        MergeCompleted(
            **_envelope(7, causation=6),
            request_id="crm-premiums-2026-11",
            mailing_id=_MAILING,
            name="Premium notices November 2026",
            status="ready",
            documents=1200,
            failed=0,
            parts=[CombinedPart(number=1, blob_id="674b1f2e9c0d4a5b6c7d8ea1", documents=1200, pages=2400)],
        ),
        MailingRegrouped(
            **_envelope(8, causation=13),
            dispatch_id=_DISPATCH,
            source_mailing_id=_MAILING,
            sent_mailing_id="5e2c7a90-1b3d-4f6a-8c9e-0d1f2a3b4c61",
            not_sent_mailing_id="7a4e9c12-3d5f-4b8a-9e0c-1f2a3b4c5d72",
            sent=1187,
            not_sent=13,
        ),
        ResolveRecipients(
            **_envelope(9),
            questions=[AddressQuestion(key=_DOCUMENT, customer_number="C00042", correspondence_type="billing")],
        ),
        RecipientsResolved(
            **_envelope(10, causation=9),
            answers=[AddressAnswer(key=_DOCUMENT, email="billing@garage-martin.example", rule="contact")],
        ),
        DispatchRequested(
            **_envelope(11),
            dispatch_id=_DISPATCH,
            mailing_id=_MAILING,
            subject="Your premium notice {document_number}",
            body="Dear client,\n\nPlease find your premium notice attached.\n",
            reply_to="service@acme-insurance.example",
            account_id="accounts-department",
            document_type="due_notice",
            requested_by=_REQUESTER,
        ),
        SendRequested(**_envelope(12, causation=11), dispatch_id=_DISPATCH, document_id=_DOCUMENT),
        DispatchCompleted(
            **_envelope(13, causation=11),
            dispatch_id=_DISPATCH,
            mailing_id=_MAILING,
            sent=1187,
            failed=13,
            failures=[Failure(document_id=_DOCUMENT, reason="550 5.1.1 mailbox unknown")],
            requested_by=_REQUESTER,
        ),
        DispatchPaused(
            **_envelope(14, causation=11),
            dispatch_id=_DISPATCH,
            mailing_id=_MAILING,
            reason="20 SMTP errors in a row (the account's error threshold)",
            errors=20,
            sent=640,
            failed=20,
            queued=340,
            requested_by=_REQUESTER,
        ),
        DispatchResumed(**_envelope(15), dispatch_id=_DISPATCH, mailing_id=_MAILING, resumption=1),
        DispatchRefused(
            **_envelope(19, causation=11),
            dispatch_id=_DISPATCH,
            mailing_id=_MAILING,
            reason=f"mailing {_MAILING!r} is replaced, not ready to send",
        ),
        DeliveryRecorded(
            **_envelope(16, causation=12),
            dispatch_id=_DISPATCH,
            document_id=_DOCUMENT,
            outcome="sent",
            recipients=["billing@garage-martin.example"],
            smtp_message_id="<20261130090012.42@acme-insurance.example>",
        ),
        DocumentSent(
            **_envelope(17, causation=12),
            dispatch_id=_DISPATCH,
            mailing_id=_MAILING,
            document_id=_DOCUMENT,
            document_number="DN-2026-0042",
            recipients=["billing@garage-martin.example"],
        ),
        EmailsRequested(
            **_envelope(20),
            email_id="inspection-reminder-2026-12",
            segment_id=_SEGMENT,
            subject="{client_name}, your car's inspection is due",
            body="Dear {client_name},\n\nYour vehicle {registration} is due for its inspection by {inspection_due}."
            "\nCall us to book a slot.\n",
            reply_to="workshop@garage-martin.example",
            requested_by=Requester(subject="l.martin", roles=["operator"]),
        ),
        CampaignFired(
            **_envelope(18),
            campaign_id="monthly-staff-list",
            occurrence_at=datetime(2026, 12, 7, 8, 0, tzinfo=UTC),
            dispatch_id="campaign-monthly-staff-list-2026-12-07",
        ),
    )
}
