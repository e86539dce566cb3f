from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from publipost_runtime import components

from .repository import RecipientRepository, TenantSettingsRepository
from .settings import RecipientDirectorySettings


@dataclass(frozen=True)
class DirectoryContext:
    settings: RecipientDirectorySettings
    recipients: RecipientRepository
    tenant_settings: TenantSettingsRepository


Context = Annotated[DirectoryContext, Depends(components)]
