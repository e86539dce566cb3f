"""Wiring of the merge service (its bootstrap)."""

from publipost_auth import service_client, service_credentials
from publipost_bus import Bus
from publipost_contracts import (
    DispatchCompleted,
    DocumentSent,
    DocumentSideEffect,
    DocumentsRendered,
    MailingRegrouped,
    MergeCompleted,
    MergeRejected,
    MergeRequested,
    RenderRequested,
)
from publipost_http import upload_limit
from publipost_runtime import Service
from publipost_storage import Storage

from . import handlers, regrouping
from .api import router, settings_router
from .clients import DirectoryClient, TemplateClient
from .context import MergeContext
from .render_workers import RenderLimits, RenderWorkers
from .repository import DocumentRepository, MailingRepository, MailingRequestRepository, TenantSettingsRepository
from .settings import MergeSettings
from .start_api import router as start_router
from .sweeper import StalledMailings


def build(settings: MergeSettings | None = None) -> Service:
    settings = settings or MergeSettings()
    storage = Storage.for_service(settings)
    bus = Bus(
        settings,
        # merge.requested: for a mailing started over HTTP (POST /mailings), taken by merge as any other.
        publishes=[MergeRequested, MergeRejected, DocumentSideEffect, RenderRequested, MergeCompleted, MailingRegrouped],
    )
    credentials = service_credentials(settings)  # one token of merge's own for every service it calls
    ctx = MergeContext(
        settings=settings,
        storage=storage,
        bus=bus,
        mailings=MailingRepository(storage.db),
        documents=DocumentRepository(storage.db),
        tenant_settings=TenantSettingsRepository(storage.db),
        requests=MailingRequestRepository(storage.db),
        templates=TemplateClient(
            service_client(settings, settings.template_url, settings.http_timeout_s, credentials=credentials)
        ),
        directory=DirectoryClient(
            service_client(settings, settings.directory_url, settings.http_timeout_s, credentials=credentials)
        ),
        renderer=RenderWorkers(
            settings.render_workers,
            RenderLimits(
                timeout_s=settings.render_timeout_s,
                memory_bytes=settings.render_memory_bytes,
                max_document_bytes=settings.max_document_bytes,
                renderer=settings.renderer,
            ),
        ),
    )

    bus.consumer(MergeRequested)(handlers.merge_requested)
    bus.consumer(DocumentsRendered)(handlers.documents_rendered)
    bus.consumer(DispatchCompleted)(regrouping.dispatch_completed)
    bus.consumer(DocumentSent)(regrouping.document_sent)

    async def close_clients() -> None:
        await ctx.templates.close()
        await ctx.directory.close()

    return Service(
        settings=settings,
        schema_version=2,  # 2: documents are listed by e-mail state
        bus=bus,
        storage=storage,
        components=ctx,
        routers=[router, start_router, settings_router],
        repositories=[ctx.mailings, ctx.documents, ctx.tenant_settings, ctx.requests],
        # A records file goes to a temporary file as it arrives; JSON, read into memory, keeps the default limit.
        body_limits={"POST /mailings multipart/form-data": upload_limit(settings.max_records_file_bytes)},
        timers=[StalledMailings(ctx)],
        on_stop=[ctx.renderer.close, close_clients],
    )


def main() -> None:
    build().run()


if __name__ == "__main__":
    main()
