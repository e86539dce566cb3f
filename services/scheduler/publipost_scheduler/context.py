from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends
from publipost_bus import Bus
from publipost_runtime import components
from publipost_storage import Storage

from .clients import DirectoryClient, Targets
from .repository import CampaignRepository, OccurrenceRepository
from .settings import SchedulerSettings

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class SchedulerContext:
    settings: SchedulerSettings
    bus: Bus
    storage: Storage
    campaigns: CampaignRepository
    occurrences: OccurrenceRepository
    directory: DirectoryClient
    targets: Targets
    clock: Clock


Context = Annotated[SchedulerContext, Depends(components)]
