from publipost_settings import ServiceSettings
from pydantic import Field


class SchedulerSettings(ServiceSettings):
    service_name: str = "scheduler"
    http_port: int = 8106
    tick_interval_s: float = Field(default=1.0, gt=0, description="How often due campaigns are looked for.")
    claim_timeout_s: float = Field(
        default=30.0, gt=0, description="After this, an occurrence claimed but not announced is announced again."
    )
