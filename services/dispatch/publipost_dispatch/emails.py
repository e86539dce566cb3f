"""emails.requested: a plain e-mail, nothing attached, to every recipient of a directory segment (a garage's
"your car's inspection is due"). It runs as a dispatch of its own id: the same sends, pause, resume,
completion and history; only the fan-out differs, one delivery per recipient the segment holds now."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from publipost_bus import Components
from publipost_contracts import EmailsRequested
from publipost_refusals import Refusal

from .context import DispatchContext
from .domain import (
    BadTemplate,
    EmailText,
    LetterFacts,
    UnknownVariable,
    UnsafeHeader,
    check_letter_text,
    check_message,
    dispatch_key,
)
from .fan_out import account_and_text, fanning_out, record_and_ask, refuse, start_sending
from .model import Delivery, Dispatch


async def emails_requested(event: EmailsRequested, ctx: DispatchContext = Components) -> None:
    """Record one delivery per recipient of the segment and ask for each send, as a dispatch's fan-out does."""
    key = dispatch_key(event.tenant_id, event.email_id)
    dispatch = await fanning_out(ctx, Dispatch.emailed(key, event, datetime.now(UTC)))
    if dispatch is None:
        return
    try:
        text, pause_after = await what_it_emails(event, ctx)
        dispatch.prepare(None, text, pause_after)
        await ctx.dispatches.save(dispatch, "text", "pause_after_errors")
        # The directory says whether the segment is still there as its recipients start to come.
        total = await record_and_ask(event, ctx, dispatch, _letters(ctx, dispatch))
    except Refusal as refusal:
        await refuse(ctx, event, dispatch, refusal)
    await start_sending(ctx, dispatch, total)


async def what_it_emails(event: EmailsRequested, ctx: DispatchContext) -> tuple[EmailText, int]:
    """The e-mail's text and the pause threshold; a Refusal says why it cannot go (the tenant turned e-mail
    off, an unknown segment, account or e-mail template, a variable no recipient's record can fill)."""
    check_message(event, ctx.settings.max_recipients_per_send)
    (await ctx.sending.get(event.tenant_id)).check_email_enabled()
    await ctx.directory.check_segment(event.tenant_id, event.segment_id)
    text, pause_after = await account_and_text(event, ctx, EmailText(subject=event.subject, body=event.body))
    check_letter_text(text)
    return text, pause_after


async def _letters(ctx: DispatchContext, dispatch: Dispatch) -> AsyncIterator[Delivery]:
    """One queued delivery per recipient, in the directory's order (by customer number)."""
    assert dispatch.segment_id is not None and dispatch.text is not None  # set by Dispatch.emailed and prepare
    day = dispatch.created_at.date()  # {date}: the day it was asked for, the same for every recipient
    index = 0
    async for recipient in ctx.directory.recipients(dispatch.tenant_id, dispatch.segment_id):
        facts = LetterFacts.of(recipient, day)
        try:  # the history shows (and searches) the subject before the send; the send renders it again
            subject: str | None = dispatch.text.render(facts.variables())[0]
        except (UnsafeHeader, UnknownVariable, BadTemplate):
            subject = None
        yield Delivery.letter(dispatch=dispatch, index=index, recipient=recipient, facts=facts, subject=subject)
        index += 1
