from publipost_settings import ServiceSettings
from pydantic import Field, model_validator


class DispatchSettings(ServiceSettings):
    service_name: str = "dispatch"
    http_port: int = 8105
    prefetch: int = Field(default=16, ge=1, description="Sends in flight per replica.")
    merge_url: str = Field(default="http://127.0.0.1:8103", description="The merge service's HTTP API.")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_starttls: bool = Field(default=False, description="Upgrade with STARTTLS (off only for a local server).")
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_connections: int = Field(default=4, ge=1, description="Pooled SMTP connections per replica.")
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    sender: str = Field(default="Publipost <no-reply@publipost.test>", description="From header and envelope sender.")
    max_send_attempts: int = Field(
        default=4, ge=1, description="SMTP tries of one document (4xx, connection errors) before it fails."
    )
    resolve_timeout_s: float = Field(default=5.0, gt=0, description="Wait for the recipient directory's answer.")
    http_timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _sends_fail_before_the_bus_gives_up(self) -> "DispatchSettings":
        # The last SMTP try must record a failure itself; if the bus dead-lettered
        # the message first, the document would never get a final outcome.
        if self.max_send_attempts >= self.max_attempts:
            raise ValueError(
                f"max_send_attempts ({self.max_send_attempts}) must be below max_attempts ({self.max_attempts})"
            )
        return self
