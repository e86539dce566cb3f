"""What every command is given (the composition root): where the services are, the caller's credential, the
HTTP transport and the consoles. `publipost` builds it from the environment; tests build one with a fake
transport and a configuration folder of their own, and pass it as the command's `obj`."""

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console

from .api import CommandFailed, ServiceClient
from .profile import CredentialStore, Profile


@dataclass
class Session:
    profile: Profile
    store: CredentialStore
    env_credential: str | None = None  # PUBLIPOST_TOKEN: a token or API key given for this run, not stored
    transport: httpx.BaseTransport | None = None
    poll_s: float = 1.0
    out: Console = field(default_factory=Console)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> "Session":
        return cls(Profile.from_env(env), CredentialStore.default(env), env.get("PUBLIPOST_TOKEN") or None)

    def credential(self) -> str:
        if self.env_credential:
            return self.env_credential
        stored = self.store.load()
        if stored is None:
            raise CommandFailed("not logged in: run `publipost login` (or set PUBLIPOST_TOKEN)")
        return stored.credential

    @contextmanager
    def client(self, service: str, credential: str | None = None) -> Iterator[ServiceClient]:
        """The API of `service` (template, merge, dispatch, scheduler), called with the caller's credential."""
        url = getattr(self.profile, f"{service}_url")
        client = ServiceClient(service, url, credential or self.credential(), self.transport)
        try:
            yield client
        finally:
            client.close()

    def print_json(self, value: Any) -> None:
        """For scripts: plain JSON on stdout, never wrapped or coloured."""
        print(json.dumps(value, indent=2, default=str))


def counted(n: int, noun: str) -> str:
    """"1 document", "3 documents": what a person reads."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
