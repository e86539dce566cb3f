from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from publipost_bus import Bus
from publipost_runtime import components
from publipost_storage import Storage

from .accounts import Accounts
from .clients import EmailTemplateClient, MergeClient
from .repository import DeliveryRepository, DispatchRepository
from .senders import Senders
from .settings import DispatchSettings


@dataclass(frozen=True)
class DispatchContext:
    settings: DispatchSettings
    storage: Storage
    bus: Bus
    dispatches: DispatchRepository
    deliveries: DeliveryRepository
    accounts: Accounts
    senders: Senders
    merge: MergeClient
    email_templates: EmailTemplateClient


Context = Annotated[DispatchContext, Depends(components)]
