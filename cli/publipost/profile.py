"""Where the command finds Publipost and who it is there: the services' URLs (environment variables, the local
stack's ports by default) and the credentials `publipost login` stored."""

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The local stack's ports (publipost_localstack.stack): service n of this order answers on base + n, the
# development issuer on base + 7. PUBLIPOST_HTTP_PORT_BASE moves them, as it moves the stack.
DEFAULT_PORT_BASE = 8100
PORT_OFFSETS = {"template": 1, "merge": 3, "dispatch": 5, "scheduler": 6, "issuer": 7}
PUBLIC_CLIENT = "publipost-cli"  # the development issuer's public client (no secret), for the password grant


@dataclass(frozen=True)
class Profile:
    """The URLs of the services the command calls and of the issuer it logs in at."""

    template_url: str
    merge_url: str
    dispatch_url: str
    scheduler_url: str
    issuer_url: str
    token_url: str | None = None  # None: the issuer's discovery document says where
    client_id: str = PUBLIC_CLIENT

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Profile":
        base = int(env.get("PUBLIPOST_HTTP_PORT_BASE", DEFAULT_PORT_BASE))

        def url(name: str) -> str:
            given = env.get(f"PUBLIPOST_{name.upper()}_URL")
            return (given or f"http://127.0.0.1:{base + PORT_OFFSETS[name]}").rstrip("/")

        return cls(
            template_url=url("template"),
            merge_url=url("merge"),
            dispatch_url=url("dispatch"),
            scheduler_url=url("scheduler"),
            issuer_url=url("issuer"),
            token_url=env.get("PUBLIPOST_TOKEN_URL") or None,
            client_id=env.get("PUBLIPOST_CLIENT_ID") or PUBLIC_CLIENT,
        )


@dataclass(frozen=True)
class Credentials:
    """What `login` stored: a bearer token of the issuer, or an API key (both go as `Authorization: Bearer`)."""

    credential: str
    user: str | None = None
    expires_at: datetime | None = None

    @classmethod
    def of(cls, credential: str, user: str | None = None) -> "Credentials":
        return cls(credential, user, token_expiry(credential))

    def to_json(self) -> dict[str, Any]:
        return {
            "credential": self.credential,
            "user": self.user,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Credentials":
        expires = data.get("expires_at")
        return cls(data["credential"], data.get("user"), datetime.fromisoformat(expires) if expires else None)


def token_expiry(credential: str) -> datetime | None:
    """A JWT's `exp`, read without checking the signature (the services check it): only to tell the person
    when to log in again. None for an API key or anything unreadable."""
    parts = credential.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return datetime.fromtimestamp(int(payload["exp"]), UTC)
    except (ValueError, KeyError, TypeError):
        return None


class CredentialStore:
    """credentials.json in the command's configuration folder, readable by its owner only."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "credentials.json"

    @classmethod
    def default(cls, env: Mapping[str, str] = os.environ) -> "CredentialStore":
        config_home = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return cls(Path(config_home) / "publipost")

    def load(self) -> Credentials | None:
        try:
            return Credentials.from_json(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None

    def save(self, credentials: Credentials) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = self.path.with_name(f".{self.path.name}.part")
        # Created 0600 before anything is written: the credential is never readable by others, even briefly.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a partial file left by an earlier run keeps its mode otherwise
        with os.fdopen(fd, "w") as out:
            json.dump(credentials.to_json(), out, indent=2)
        partial.rename(self.path)

    def clear(self) -> bool:
        """Whether there was something to forget."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True
