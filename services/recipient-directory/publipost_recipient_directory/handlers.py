"""recipients.resolve → the address each document goes to (request/reply: it changes nothing)."""

from publipost_bus import Components
from publipost_contracts import AddressAnswer, RecipientsResolved, ResolveRecipients

from .context import DirectoryContext
from .domain import AddressRequest, resolve


async def resolve_recipients(event: ResolveRecipients, ctx: DirectoryContext = Components) -> RecipientsResolved:
    """Answer which address each document goes to, and by which rule."""
    numbers = [q.customer_number for q in event.questions if q.customer_number]
    recipients = await ctx.recipients.get_many(event.tenant_id, numbers) if numbers else {}
    order = await ctx.tenant_settings.resolution_order(event.tenant_id)
    answers = []
    for question in event.questions:
        request = AddressRequest(
            question.record_email,
            question.customer_number,
            question.correspondence_type,
            prefer_directory=question.prefer_directory,
            document_type=question.document_type,
        )
        resolution = resolve(order, request, recipients.get(question.customer_number or ""))
        answers.append(
            AddressAnswer(
                key=question.key,
                email=resolution.email,
                rule=resolution.rule,
                cc=resolution.cc,
                reason=resolution.reason,
                format=resolution.format,
            )
        )
    return RecipientsResolved.caused_by(event, key="resolved", answers=answers)
