from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from publipost_bus import Bus
from publipost_runtime import components
from publipost_storage import Storage

from .repository import EmailTemplateRepository, TemplateRepository, TemplateVersionRepository
from .settings import TemplateSettings


@dataclass(frozen=True)
class TemplateContext:
    settings: TemplateSettings
    storage: Storage
    bus: Bus
    templates: TemplateRepository
    versions: TemplateVersionRepository
    email_templates: EmailTemplateRepository


Context = Annotated[TemplateContext, Depends(components)]
