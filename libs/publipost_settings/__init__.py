"""One settings pattern for every service: pydantic-settings read from environment variables.

Shared knobs read `PUBLIPOST_*`; the two connection URLs keep the names every
tool uses (`RABBITMQ_URL`, `MONGODB_URL`). A service subclasses
`ServiceSettings` and adds its own fields, which read `PUBLIPOST_<FIELD>`.
"""

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
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
    bus_service_users: list[str] = Field(
        default_factory=list,
        description="RabbitMQ users whose messages are trusted for every tenant: the other Publipost services' "
        "users (this service's own, from RABBITMQ_URL, always is), and whoever replays dead letters. A message "
        "names its publisher in its user_id property, which RabbitMQ checks against the connection's user.",
    )
    bus_publishers: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Integrating systems: each one's RabbitMQ user and the tenants it may publish for, "
        '{"crm": ["acme", "globex"]}. A message of any other user, without user_id, or for another tenant is '
        "dead-lettered with the reason before its handler runs.",
    )
    outbound_allow: list[str] = Field(
        default_factory=list,
        description="Addresses an admin may point Publipost at although they are not public (a tenant's SMTP "
        "server, a conversion backend): networks (10.20.0.0/16, 127.0.0.1), host names (mail.internal.example) "
        "and domains (*.svc.cluster.local). Empty: only public addresses (see publipost_outbound).",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PUBLIPOST_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="Where traces go, by OTLP over HTTP: the collector's base address (http://otel-collector:4318; "
        "spans are sent to <it>/v1/traces), read from PUBLIPOST_OTLP_ENDPOINT or else the standard "
        "OTEL_EXPORTER_OTLP_ENDPOINT. Unset: no tracing at all (nothing made, nothing sent). The sampler is the "
        "SDK's, so OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG apply (publipost_telemetry).",
    )
    query_log: Path | None = Field(
        default=None,
        description=(
            "When set, the service appends the shape of each query it sends (filter, sort, hint, comment, with one "
            "example) to this file as JSON lines, once per shape; the test suite sets it to check that every query "
            "is index-backed. Unset in production."
        ),
    )


    # --- identity (docs/identity.md) -------------------------------------------------
    auth_required: bool = Field(
        default=True,
        description="Whether a route guarded by publipost_auth.require refuses a call without credentials (401). "
        "Off, such a call acts for the tenant named in X-Tenant-Id with every role but `service`, so anyone who "
        "reaches the service is anyone they name: only for a machine of one's own without an issuer. Credentials "
        "given are checked either way.",
    )
    auth_issuer_url: str | None = Field(
        default=None,
        description="The OpenID Connect issuer whose bearer tokens are trusted, exactly as its tokens' `iss` "
        "says it (Keycloak: https://host/realms/<realm>; Entra ID: https://login.microsoftonline.com/<id>/v2.0). "
        "Its keys and token endpoint are found at <issuer>/.well-known/openid-configuration. Unset: only API "
        "keys are accepted.",
    )
    auth_audience: str = Field(
        default="publipost", description="The `aud` a token must carry to be accepted by Publipost."
    )
    auth_jwks_url: str | None = Field(
        default=None, description="The issuer's key set (JWKS), when it is not the one its discovery document names."
    )
    auth_token_url: str | None = Field(
        default=None,
        description="Where this service gets its own tokens (client credentials), when not the one discovered.",
    )
    auth_tenant_claim: str = Field(
        default="tenant_id", description="The claim holding the caller's tenant; a dotted path reads a nested claim."
    )
    auth_roles_claim: str = Field(
        default="roles",
        description="The claim holding the caller's roles (a list, or a space-separated string); a dotted path "
        "reads a nested claim (resource_access.publipost.roles). When it is absent, Keycloak's "
        "realm_access.roles is read.",
    )
    auth_default_tenant: str | None = Field(
        default=None,
        description="The tenant of a token that carries none, for an installation with one tenant and an issuer "
        "that cannot add a tenant claim. Unset: such a token is refused (403).",
    )
    auth_algorithms: list[str] = Field(
        default=["RS256", "ES256"], description="Signature algorithms a token may use; never `none`."
    )
    auth_leeway_s: int = Field(default=30, ge=0, le=300, description="Clock skew allowed on exp and nbf.")
    auth_jwks_max_age_s: float = Field(
        default=3600, gt=0, description="How long the issuer's keys are used before they are fetched again."
    )
    auth_jwks_min_refresh_s: float = Field(
        default=30,
        ge=0,
        description="A token signed by a key not in the cached set makes the keys be fetched again at most this "
        "often: a stream of tokens with made-up key ids cannot make the service hammer the issuer.",
    )
    auth_http_timeout_s: float = Field(default=3.0, gt=0, description="Timeout of each call to the issuer.")
    auth_client_id: str | None = Field(
        default=None, description="This service's own client at the issuer, for its calls to other services."
    )
    auth_client_secret: SecretStr | None = Field(default=None, description="The secret of auth_client_id.")
    auth_client_scope: str | None = Field(
        default=None,
        description="The scope this service asks its tokens for, when the issuer needs one to set the audience "
        "(Entra ID: api://publipost/.default).",
    )
    auth_dev_issuer: bool = Field(
        default=False,
        description="The issuer is the local stack's development issuer: its plain-HTTP address is accepted. "
        "Never set in production, where the issuer's address must be HTTPS.",
    )
    auth_api_key_cache_s: float = Field(
        default=10,
        ge=0,
        description="How long a checked API key is trusted without reading it again: a revoked key stops "
        "working within this time.",
    )
    auth_last_use_flush_s: float = Field(
        default=60, gt=0, description="API keys' last use is written at most this often, in one batch."
    )

    @property
    def identity_database_name(self) -> str:
        """API keys live in one database every service reads (to check a key) like the blobs'."""
        return f"{self.namespace}_identity"

    @property
    def database_name(self) -> str:
        return f"{self.namespace}_{self.service_name}".replace("-", "_")

    @property
    def blob_database_name(self) -> str:
        """GridFS lives in one database that every service may read blobs from by id."""
        return f"{self.namespace}_blobs"
