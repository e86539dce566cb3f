"""dispatch.completed and dispatch.paused, told by e-mail to the person who started the dispatch: a send of
50,000 documents runs for hours, and nobody should have to watch the console to learn it ended or stopped.

The notice goes from the platform's own server (the tenant's default account), whatever account the
dispatch sent through: it is Publipost speaking to its user, not the tenant to its clients. Each event is
handled once (the bus's inbox), so a completion announced again is not told twice."""

from collections.abc import Callable
from dataclasses import dataclass

from publipost_bus import Components
from publipost_contracts import DispatchCompleted, DispatchPaused
from publipost_logging import get_logger

from .context import DispatchContext
from .domain import NOT_SENT, dispatch_key
from .mail import MESSAGE_BUILDERS
from .smtp import SmtpRefused

log = get_logger(__name__)

FAILURES_TOLD = 10  # the first failures the notice names; the dispatch's deliveries list every one


@dataclass(frozen=True)
class Notice:
    subject: str
    body: str


def completion_notice(event: DispatchCompleted, mailing_name: str, failures: list[str]) -> Notice:
    """`failures`: the first few documents not sent, each "number: reason"."""
    subject = f"Sending of \u201c{mailing_name}\u201d complete: {event.sent} sent, {event.failed} not sent"
    lines = [f"{_what(event, mailing_name)} has ended.", ""]
    lines.append(f"Sent: {event.sent}")
    lines.append(f"Not sent: {event.failed}" + (f" ({event.uncertain} unconfirmed)" if event.uncertain else ""))
    if failures:
        lines += ["", "Not sent:"]
        lines += [f"- {failure}" for failure in failures]
        if event.failed > len(failures):
            lines.append(f"- and {event.failed - len(failures)} more: see the dispatch's deliveries.")
    if event.regroup and event.failed:
        lines += [
            "",
            "The documents not sent are in the mailing's \u201cnot sent by e-mail\u201d batch, to fix and send again.",
        ]
    return Notice(subject, "\n".join(lines) + "\n")


def pause_notice(event: DispatchPaused, mailing_name: str) -> Notice:
    subject = f"Sending of \u201c{mailing_name}\u201d paused: {event.reason}"
    lines = [
        f"{_what(event, mailing_name)} stopped: {event.reason}.",
        "",
        f"Sent: {event.sent}",
        f"Not sent: {event.failed}",
    ]
    if event.queued is not None:
        lines.append(f"Waiting: {event.queued}")
    lines += ["", f"Once the cause is fixed, resume it (POST /dispatches/{event.dispatch_id}/resume)."]
    return Notice(subject, "\n".join(lines) + "\n")


def _what(event: DispatchCompleted | DispatchPaused, name: str) -> str:
    if event.mailing_id is None:  # a plain e-mail, named by its id
        return f"The e-mail \u201c{name}\u201d to the clients of a selection"
    return f"The dispatch {event.dispatch_id} of \u201c{name}\u201d"


async def dispatch_completed(event: DispatchCompleted, ctx: DispatchContext = Components) -> None:
    key = dispatch_key(event.tenant_id, event.dispatch_id)
    failures = [
        f"{d.document_number or d.customer_number}: {d.reason}"
        async for d in ctx.deliveries.in_state(key, NOT_SENT, limit=FAILURES_TOLD)
    ]
    await _tell(ctx, event, lambda name: completion_notice(event, name, failures))


async def dispatch_paused(event: DispatchPaused, ctx: DispatchContext = Components) -> None:
    await _tell(ctx, event, lambda name: pause_notice(event, name))


async def _tell(
    ctx: DispatchContext, event: DispatchCompleted | DispatchPaused, notice_for: Callable[[str], Notice]
) -> None:
    """E-mail the notice to whoever started the dispatch, when their address is known (a person's token
    says it; an integrating system's has none, and is told by the event itself)."""
    to = event.requested_by.email if event.requested_by else None
    if not to:
        return
    dispatch = await ctx.dispatches.get(dispatch_key(event.tenant_id, event.dispatch_id))
    # A plain e-mail has no mailing: its id, which its sender chose ("inspection-reminder-2026-12"), names it.
    notice = notice_for(dispatch.mailing_name if dispatch and dispatch.mailing_name else event.dispatch_id)
    account = await ctx.accounts.get(event.tenant_id, None)
    message = MESSAGE_BUILDERS[ctx.settings.mime_writer](
        sender=account.sender,
        to=[to],
        cc=[],
        reply_to=None,
        subject=notice.subject,
        body=notice.body,
        html_body=None,
        attachment=None,
        message_id=f"<notice.{event.event_id}@{account.message_id_domain}>",
    )
    try:
        await ctx.senders.for_account(account).send(message, [to], [to])
    except SmtpRefused as refused:  # a retry gets the same answer; an unavailable server is retried by the bus
        log.warning("notice to the requester refused", dispatch_id=event.dispatch_id, to=to, reason=str(refused))
        return
    log.info("requester told", dispatch_id=event.dispatch_id, event_type=event.type)
