"""recipients.resolve → the address a document goes to (request/reply: it changes nothing)."""

from publipost_contracts import RecipientResolved, ResolveRecipient

from .context import DirectoryContext
from .domain import AddressRequest, resolve


async def resolve_recipient(event: ResolveRecipient, ctx: DirectoryContext) -> RecipientResolved:
    recipient = None
    if event.customer_number:
        recipient = await ctx.recipients.get(event.tenant_id, event.customer_number)
    order = await ctx.tenant_settings.resolution_order(event.tenant_id)
    request = AddressRequest(event.record_email, event.customer_number, event.correspondence_type)
    resolution = resolve(order, request, recipient)
    return RecipientResolved.caused_by(
        event,
        key="resolved",
        email=resolution.email,
        rule=resolution.rule,
        cc=resolution.cc,
        reason=resolution.reason,
    )
