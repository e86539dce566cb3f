from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from publipost_bus import Bus
from publipost_runtime import components
from publipost_storage import BlobBatch, Storage

from .backends import Backends
from .libreoffice import LibreOfficePool
from .repository import TenantSettingsRepository, UsageRepository
from .settings import RenderPdfSettings


@dataclass(frozen=True)
class RenderContext:
    settings: RenderPdfSettings
    storage: Storage
    bus: Bus
    blobs: BlobBatch  # a chunk's DOCX and PDFs in a few round trips; storage.blobs for single blobs
    converter: LibreOfficePool  # this replica's own LibreOffice workers, the default backend
    backends: Backends
    tenants: TenantSettingsRepository
    usage: UsageRepository


Context = Annotated[RenderContext, Depends(components)]
