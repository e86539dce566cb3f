from typing import Literal

from publipost_settings import ServiceSettings
from pydantic import Field, SecretStr, model_validator


class DispatchSettings(ServiceSettings):
    service_name: str = "dispatch"
    http_port: int = 8105
    prefetch: int = Field(
        default=64, ge=1, description="Sends in flight per replica; their database calls share round trips."
    )
    merge_url: str = Field(default="http://127.0.0.1:8103", description="The merge service's HTTP API.")
    template_url: str = Field(default="http://127.0.0.1:8101", description="The template service (e-mail templates).")
    directory_url: str = Field(
        default="http://127.0.0.1:8102", description="The recipient directory (a plain e-mail's segment)."
    )
    # The default account: used by a dispatch that names no account of its tenant.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_starttls: bool = Field(default=False, description="Upgrade with STARTTLS (off only for a local server).")
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_connections: int = Field(default=4, ge=1, description="SMTP connections of the default account.")
    smtp_rate_per_s: int | None = Field(default=None, ge=1, description="Messages per second of the default account.")
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    sender: str = Field(default="Publipost <no-reply@publipost.test>", description="From header and envelope sender.")
    sender_domain: str = Field(
        default="",
        description="The platform's fixed sending domain: a tenant that chose a sender_prefix (PUT /settings/sending) "
        "sends through the default account from <prefix>@<this domain>. Empty: tenants cannot choose one.",
    )
    mime_writer: Literal["direct", "email"] = Field(
        default="direct",
        description="How an e-mail is written: straight to bytes from parts the standard library encodes, the "
        "attachment encoded once per document (mail.py), or built as an EmailMessage and serialised per e-mail; "
        "docs/library-parity.md.",
    )
    account_key: SecretStr | None = Field(
        default=None,
        description="Seals SMTP passwords at rest: a key (urlsafe base64 of 32 random bytes), or several separated "
        "by commas, newest first: the first seals, every one opens, so a key is replaced without losing a password "
        "(then `python -m publipost_dispatch.passwords reseal`). Without it, accounts cannot store a password.",
    )
    account_test_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="A connection test (POST /accounts/{id}/test) answers after exactly this long, whatever the "
        "server did, and gives up on a server that has not let it log in by then: how long it took never tells an "
        "open port from a closed or filtered one.",
    )
    plain_smtp_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts besides loopback that an account may reach without TLS (a mail catcher in compose).",
    )
    max_recipients_per_send: int = Field(
        default=50, ge=1, description="Most addresses in to, cc and bcc together of one dispatch or send (422 past it)."
    )
    max_send_attempts: int = Field(
        default=4, ge=1, description="Tries of one document (4xx, connection errors) before it fails."
    )
    pause_after_errors: int = Field(
        default=25, ge=1, description="SMTP errors after which a dispatch pauses; an account may set its own."
    )
    send_lease_s: float = Field(
        default=60.0,
        gt=0,
        description="How long a claimed send stays its replica's without news. The replica renews it at each "
        "sweep while the send is alive, so it lapses only for a replica that died; the send is then asked again. "
        "A send the replica itself lost track of (its release failed with the database) it gives back at a "
        "sweep once the claim is two sweeps old. Must exceed sweep_interval_s.",
    )
    lost_send_after_s: float = Field(
        default=30.0,
        gt=0,
        description="A sending dispatch with documents queued, none being sent and no send waiting in the queue "
        "this long has lost messages: its queued documents are asked for again.",
    )
    sweep_interval_s: float = Field(
        default=5.0, gt=0, description="Each replica says it is alive, and looks for lost sends and finished dispatches."
    )
    replica_silence_s: float = Field(
        default=20.0,
        gt=0,
        description="A replica silent this long is presumed dead: the sends it had claimed are asked again.",
    )
    connection_lease_s: float = Field(
        default=30.0, gt=0, description="Life of a replica's claim on one of an account's connections, renewed while open."
    )
    idle_connection_s: float = Field(default=5.0, gt=0, description="An idle SMTP connection is closed after this.")
    resolve_timeout_s: float = Field(default=5.0, gt=0, description="Wait for the recipient directory's answer.")
    http_timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _sends_fail_before_the_bus_gives_up(self) -> "DispatchSettings":
        # The last try must record a failure itself; if the bus dead-lettered
        # the message first, the document would never get a final outcome.
        if self.max_send_attempts >= self.max_attempts:
            raise ValueError(
                f"max_send_attempts ({self.max_send_attempts}) must be below max_attempts ({self.max_attempts})"
            )
        return self
