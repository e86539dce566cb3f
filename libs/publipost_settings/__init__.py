"""One settings pattern for every service: pydantic-settings read from environment variables.

Shared knobs read `PUBLIPOST_*`; the two connection URLs keep the names every
tool uses (`RABBITMQ_URL`, `MONGODB_URL`). A service subclasses
`ServiceSettings` and adds its own fields, which read `PUBLIPOST_<FIELD>`.
"""

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PUBLIPOST_", extra="ignore", frozen=True, populate_by_name=True)

    service_name: str = Field(description="Short name of the service; names its queues and its database.")
    namespace: str = Field(
        default="publipost",
        pattern=r"^[a-z][a-z0-9-]{0,30}$",
        description="Prefix of every exchange, queue and database, so stacks can share one broker and server.",
    )
    rabbitmq_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/",
        validation_alias=AliasChoices("RABBITMQ_URL", "PUBLIPOST_RABBITMQ_URL"),
    )
    mongodb_url: str = Field(
        default="mongodb://127.0.0.1:27117/",
        validation_alias=AliasChoices("MONGODB_URL", "PUBLIPOST_MONGODB_URL"),
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8100, ge=0, le=65535)
    log_level: str = "INFO"
    prefetch: int = Field(default=8, ge=1, description="Unacknowledged messages a consumer holds at once.")
    max_attempts: int = Field(default=5, ge=1, description="Tries of a failing message before it is dead-lettered.")
    retry_base_delay_s: float = Field(default=0.5, gt=0, description="First retry delay; doubles on each attempt.")
    retry_max_delay_s: float = Field(default=30.0, gt=0)
    delivery_limit: int = Field(
        default=10, ge=1, description="Broker-side cap on redeliveries (crash loops) before dead-lettering."
    )
    shutdown_grace_s: float = Field(default=30.0, gt=0, description="Time given to in-flight messages on SIGTERM.")
    max_body_bytes: int = Field(
        default=1 << 20,
        gt=0,
        description="Largest request body of an HTTP route, counted as it arrives (413 past it); routes that take "
        "uploads have their own limit, from their service's settings.",
    )
    query_log: Path | None = Field(
        default=None,
        description=(
            "When set, the service appends the shape of each query it sends (filter, sort, hint, comment, with one "
            "example) to this file as JSON lines, once per shape; the test suite sets it to check that every query "
            "is index-backed. Unset in production."
        ),
    )

    @property
    def database_name(self) -> str:
        return f"{self.namespace}_{self.service_name}".replace("-", "_")

    @property
    def blob_database_name(self) -> str:
        """GridFS lives in one database that every service may read blobs from by id."""
        return f"{self.namespace}_blobs"
