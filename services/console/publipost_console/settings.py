from publipost_settings import ServiceSettings
from pydantic import Field, SecretStr


class ConsoleSettings(ServiceSettings):
    """The console owns no data: the services' addresses, its client at the issuer (auth_issuer_url, as every
    service names it) and the key of its session cookies."""

    service_name: str = "console"
    http_port: int = 8108
    template_url: str = Field(default="http://127.0.0.1:8101", description="The template service's HTTP API.")
    directory_url: str = Field(default="http://127.0.0.1:8102", description="The recipient directory's HTTP API.")
    merge_url: str = Field(default="http://127.0.0.1:8103", description="merge's HTTP API.")
    dispatch_url: str = Field(default="http://127.0.0.1:8105", description="dispatch's HTTP API.")
    scheduler_url: str = Field(default="http://127.0.0.1:8106", description="The scheduler's HTTP API.")
    render_url: str = Field(
        default="http://127.0.0.1:8104", description="render-pdf's HTTP API: conversion quota, usage and backend."
    )
    http_timeout_s: float = Field(default=30.0, gt=0, description="Timeout of each call to a service.")
    console_client_id: str = Field(
        default="publipost-console",
        description="The console's public client at the issuer (authorization code flow with PKCE, no secret).",
    )
    auth_authorize_url: str | None = Field(
        default=None,
        description="The issuer's authorization endpoint as browsers reach it, when not the one its discovery "
        "document names (docker compose: the services reach the issuer as http://dev-issuer:8080, browsers as "
        "http://localhost:8107).",
    )
    public_url: str | None = Field(
        default=None,
        description="The console's address as browsers see it (https://publipost.example.com), for the redirect "
        "URI given to the issuer and the cookies' Secure flag. Unset: taken from each request (a console reached "
        "directly, as in the local stack).",
    )
    session_key: SecretStr = Field(
        description="The Fernet key (32 bytes, URL-safe base64: `python -c 'from cryptography.fernet import "
        "Fernet; print(Fernet.generate_key().decode())'`) sealing the session cookies. Every replica is given the "
        "same; changing it signs everyone out.",
    )
    session_max_age_s: int = Field(
        default=8 * 3600,
        gt=0,
        description="A session ends after this even if its token lives longer; it ends sooner when the token expires.",
    )
    page_size: int = Field(default=20, ge=1, le=200, description="Mailings per page of the mailing list.")
    poll_interval_s: float = Field(default=2.0, gt=0, description="How often a page in progress asks again.")
    max_upload_bytes: int = Field(
        default=512 << 20,
        gt=0,
        description="Largest file of a form (a mailing's records, a directory import, a template), passed on to "
        "its service as it arrives; the service's own limit applies too.",
    )
