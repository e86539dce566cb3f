import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends
from publipost_bus import Bus
from publipost_runtime import components
from publipost_storage import BlobStore, Storage

from .backends import Backends
from .libreoffice import LibreOfficePool
from .repository import TenantSettingsRepository, UsageRepository
from .settings import RenderPdfSettings


@dataclass(frozen=True)
class RenderContext:
    settings: RenderPdfSettings
    storage: Storage
    bus: Bus
    converter: LibreOfficePool  # this replica's own LibreOffice workers, the default backend
    backends: Backends
    tenants: TenantSettingsRepository
    usage: UsageRepository
    @property
    def blobs(self) -> BlobStore:
        return self.storage.blobs

    # Chunks are read, counted and sorted into runs one at a time, in the order they came: the first one
    # reaches LibreOffice first instead of every chunk in flight sharing the CPU and the database with it.
    preparing: asyncio.Lock = field(default_factory=asyncio.Lock)


Context = Annotated[RenderContext, Depends(components)]
