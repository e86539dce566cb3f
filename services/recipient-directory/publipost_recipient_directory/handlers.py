"""recipients.resolve → the address a document goes to (request/reply: it changes nothing)."""

from publipost_contracts import RecipientResolved, ResolveRecipient

from .context import DirectoryContext
from .domain import resolve


async def resolve_recipient(event: ResolveRecipient, ctx: DirectoryContext) -> RecipientResolved:
    recipient = None
    if event.customer_number:
        recipient = await ctx.recipients.get(event.tenant_id, event.customer_number)
    resolution = resolve(event.record_email, event.customer_number, recipient)
    return RecipientResolved.caused_by(
        event, key="resolved", email=resolution.email, rule=resolution.rule, reason=resolution.reason
    )
