import asyncio
from dataclasses import dataclass, field
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
    # Chunks are read, counted and sorted into runs one at a time, in the order they came: the first one
    # reaches LibreOffice first instead of every chunk in flight sharing the CPU and the database with it.
    preparing: asyncio.Lock = field(default_factory=asyncio.Lock)


Context = Annotated[RenderContext, Depends(components)]
