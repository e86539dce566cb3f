from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from publipost_bus import Bus
from publipost_runtime import components
from publipost_storage import Storage

from .clients import DirectoryClient, TemplateClient
from .render_workers import RenderWorkers
from .repository import DocumentRepository, MailingRepository, MailingRequestRepository, TenantSettingsRepository
from .settings import MergeSettings


@dataclass(frozen=True)
class MergeContext:
    settings: MergeSettings
    storage: Storage
    bus: Bus
    mailings: MailingRepository
    documents: DocumentRepository
    tenant_settings: TenantSettingsRepository
    requests: MailingRequestRepository
    templates: TemplateClient
    directory: DirectoryClient
    renderer: RenderWorkers


Context = Annotated[MergeContext, Depends(components)]
