from publipost_settings import ServiceSettings
from pydantic import Field


class SchedulerSettings(ServiceSettings):
    service_name: str = "scheduler"
    http_port: int = 8106
    tick_interval_s: float = Field(default=1.0, gt=0, description="How often due campaigns are looked for.")
    claim_timeout_s: float = Field(
        default=30.0, gt=0, description="After this, an occurrence claimed but not announced is announced again."
    )
    late_grace_s: float = Field(
        default=300.0, gt=0, description="An occurrence later than this is missed (catch-up policy 'skip' drops it)."
    )
    directory_url: str = Field(default="http://127.0.0.1:8102", description="The recipient directory's HTTP API.")
    merge_url: str = Field(default="http://127.0.0.1:8103", description="merge's HTTP API: a campaign's mailing.")
    template_url: str = Field(default="http://127.0.0.1:8101", description="The template service's HTTP API.")
    dispatch_url: str = Field(
        default="http://127.0.0.1:8105", description="dispatch's HTTP API: whether a campaign's author may use its account."
    )
    http_timeout_s: float = Field(default=30.0, gt=0)
