from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from publipost_bus import Bus
from publipost_runtime import components
from publipost_storage import Storage

from .clients import MergeClient
from .repository import DeliveryRepository, DispatchRepository
from .settings import DispatchSettings
from .smtp import SmtpPool


@dataclass(frozen=True)
class DispatchContext:
    settings: DispatchSettings
    storage: Storage
    bus: Bus
    dispatches: DispatchRepository
    deliveries: DeliveryRepository
    merge: MergeClient
    smtp: SmtpPool


Context = Annotated[DispatchContext, Depends(components)]
