from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from publipost_runtime import components

from .repository import RecipientRepository, SegmentRepository, TenantSettingsRepository
from .settings import RecipientDirectorySettings


@dataclass(frozen=True)
class DirectoryContext:
    settings: RecipientDirectorySettings
    recipients: RecipientRepository
    segments: SegmentRepository
    tenant_settings: TenantSettingsRepository


Context = Annotated[DirectoryContext, Depends(components)]
