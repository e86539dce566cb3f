from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends
from publipost_bus import Bus
from publipost_runtime import components

from .repository import CampaignRepository, OccurrenceRepository
from .settings import SchedulerSettings

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class SchedulerContext:
    settings: SchedulerSettings
    bus: Bus
    campaigns: CampaignRepository
    occurrences: OccurrenceRepository
    clock: Clock


Context = Annotated[SchedulerContext, Depends(components)]
