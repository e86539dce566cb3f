from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from publipost_bus import Bus
from publipost_runtime import components
from publipost_storage import Storage

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


Context = Annotated[RenderContext, Depends(components)]
