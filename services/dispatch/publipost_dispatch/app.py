"""Wiring of the dispatch service (its bootstrap)."""

import asyncio

from publipost_auth import service_client, service_credentials
from publipost_bus import Bus
from publipost_contracts import (
    DeliveryRecorded,
    DispatchCompleted,
    DispatchPaused,
    DispatchRefused,
    DispatchRequested,
    DispatchResumed,
    DocumentSent,
    EmailsRequested,
    ResolveRecipients,
    SendRequested,
)
from publipost_outbound import OutboundPolicy
from publipost_runtime import Service
from publipost_storage import Storage

from . import accounts_api, api, completion, emails, fan_out, history_api, notifications, sending
from .accounts import Accounts
from .clients import DirectoryClient, EmailTemplateClient, MergeClient
from .completions import CompletionCheck
from .context import DispatchContext
from .pdfs import PdfReader
from .repository import (
    AccountRepository,
    ConnectionLeaseRepository,
    DeliveryRepository,
    DispatchRepository,
    ReplicaRepository,
    SendCounterRepository,
    TenantSendingRepository,
)
from .resolver import RecipientResolver
from .senders import Senders
from .settings import DispatchSettings
from .sweeper import Sweeper


def build(settings: DispatchSettings | None = None) -> Service:
    settings = settings or DispatchSettings()
    storage = Storage.for_service(settings)
    bus = Bus(
        settings,
        publishes=[
            DispatchRequested,  # POST /dispatches, once the request is checked
            EmailsRequested,  # POST /emails, likewise
            SendRequested,
            DeliveryRecorded,
            DocumentSent,
            DispatchCompleted,
            DispatchRefused,
            DispatchPaused,
            DispatchResumed,
            ResolveRecipients,
        ],
    )
    leases = ConnectionLeaseRepository(storage.db)
    counters = SendCounterRepository(storage.db)
    choices = TenantSendingRepository(storage.db)
    credentials = service_credentials(settings)  # one token of dispatch's own for every service it calls
    ctx = DispatchContext(
        settings=settings,
        storage=storage,
        bus=bus,
        dispatches=DispatchRepository(storage.db),
        deliveries=DeliveryRepository(storage.db),
        replicas=ReplicaRepository(storage.db),
        accounts=Accounts(AccountRepository(storage.db), choices, settings),
        sending=choices,
        senders=Senders(
            leases,
            counters,
            timeout_s=settings.smtp_timeout_s,
            lease_s=settings.connection_lease_s,
            idle_s=settings.idle_connection_s,
            outbound=OutboundPolicy.of(settings.outbound_allow),
        ),
        pdfs=PdfReader(storage.blobs),
        completions=CompletionCheck(),
        resolver=RecipientResolver(bus, settings.resolve_timeout_s),
        merge=MergeClient(
            service_client(settings, settings.merge_url, settings.http_timeout_s, credentials=credentials)
        ),
        email_templates=EmailTemplateClient(
            service_client(settings, settings.template_url, settings.http_timeout_s, credentials=credentials)
        ),
        directory=DirectoryClient(
            service_client(settings, settings.directory_url, settings.http_timeout_s, credentials=credentials)
        ),
    )

    # The check runs after the send that asked for it, with the components the bus provides (fakes in unit tests).
    ctx.completions.check = lambda key: completion.complete_if_done(bus.components, key)

    bus.consumer(DispatchRequested)(fan_out.dispatch_requested)
    bus.consumer(EmailsRequested)(emails.emails_requested)
    bus.consumer(DispatchResumed)(fan_out.dispatch_resumed)
    # The delivery's state in the database already makes a second handling of a send do nothing (its
    # claim fails); the inbox's two extra writes per e-mail would only slow every send.
    bus.consumer(SendRequested, idempotent=False)(sending.send_requested)
    bus.consumer(DispatchCompleted)(notifications.dispatch_completed)
    bus.consumer(DispatchPaused)(notifications.dispatch_paused)

    async def alive_before_consuming() -> None:
        # Beat once before any claim, so no other replica's sweep takes this one's first sends for lost.
        await ctx.replicas.beat(ctx.senders.holder)

    async def close_adapters() -> None:
        # Immediate sends under way end first (the shutdown grace bounds the wait; one cut is recorded
        # uncertain by the sweep of another replica or the next start).
        await asyncio.gather(*ctx.manual_sends, return_exceptions=True)
        await ctx.completions.wait()
        await ctx.senders.close()
        await ctx.merge.close()
        await ctx.email_templates.close()
        await ctx.directory.close()

    return Service(
        settings=settings,
        bus=bus,
        storage=storage,
        components=ctx,
        routers=[api.router, api.settings_router, accounts_api.router, history_api.router],
        repositories=[ctx.dispatches, ctx.deliveries, ctx.replicas, ctx.accounts.repository, counters, leases],
        timers=[ctx.senders, Sweeper(ctx)],
        on_start=[alive_before_consuming],
        on_stop=[close_adapters],
    )


def main() -> None:
    build().run()


if __name__ == "__main__":
    main()
