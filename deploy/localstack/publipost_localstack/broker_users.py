"""RabbitMQ users: one per service, one per integrating system, each with only the permissions it needs.

The permissions are the ones the README's table lists (README, "RabbitMQ users and permissions"); `make up`
gives the local stack's services and its demo integrating system theirs, and the tests make users of
their own the same way. Users are written in one go as broker definitions, through `rabbitmqctl
import_definitions` (as root, on the broker's machine) or the management API when it answers.

    service  <ns>-<service>:   configure, write, read  ^<ns>\\.(events|retry|dead-letter)$ and its own queues
    system   <ns>-<system>:    write <ns>.events (topic: the *.requested it may publish), its own queues
"""

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

USERS_FILE = "users.json"
# What an integrating system publishes, and the outcomes it binds a queue of its own to.
SYSTEM_PUBLISHES = ("merge.requested", "dispatch.requested", "emails.requested")
SYSTEM_READS = ("merge.completed", "merge.rejected", "merge.mailing_regrouped", "dispatch.completed", "document.sent")


@dataclass(frozen=True)
class Permissions:
    configure: str
    write: str
    read: str
    topic_exchange: str | None = None  # topic permissions on this exchange, when any
    topic_write: str = ".*"
    topic_read: str = ".*"


def _either(*patterns: str) -> str:
    return "|".join(patterns)


def _routing_keys(event_types: Iterable[str]) -> str:
    return "^(" + "|".join(re.escape(t) for t in event_types) + ")$"


def service_user(namespace: str, service: str) -> str:
    return f"{namespace}-{service}"


def service_permissions(namespace: str, service: str) -> Permissions:
    """Its exchanges (declared by every service), its own queues `<ns>.<service>.*` (consumer, retry, dead
    letter): it declares, binds, publishes to and reads them, and no other service's queue. Write on the
    default exchange too: a retry queue dead-letters back through it (declaring one needs it), and the
    answer to a request (recipients.resolve) goes through it."""
    ns = re.escape(namespace)
    own = _either(rf"^{ns}\.(events|retry|dead-letter)$", rf"^{ns}\.{re.escape(service)}\..*")
    return Permissions(configure=own, write=_either(own, r"^amq\.default$"), read=own)


def system_permissions(namespace: str, user: str) -> Permissions:
    """An integrating system: publishes on the events exchange only the requests it may make (topic
    permissions on the routing key), and has queues of its own, `<user>.*`, bound to the outcomes it reads."""
    ns = re.escape(namespace)
    queues = rf"^{re.escape(user)}\..*"
    return Permissions(
        configure=queues,
        write=_either(rf"^{ns}\.events$", queues),
        read=_either(rf"^{ns}\.events$", queues),
        topic_exchange=f"{namespace}.events",
        topic_write=_routing_keys(SYSTEM_PUBLISHES),
        topic_read=_routing_keys(SYSTEM_READS),
    )


def password_hash(password: str) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password)), 4 random bytes of salt."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(vhost: str, users: dict[str, tuple[str, Permissions]]) -> dict[str, Any]:
    """Broker definitions (the format of `rabbitmqctl export_definitions`) of `users`: name → (password, permissions)."""
    return {
        "users": [
            {"name": name, "password_hash": password_hash(password), "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}
            for name, (password, _) in users.items()
        ],
        "permissions": [
            {"user": name, "vhost": vhost, "configure": p.configure, "write": p.write, "read": p.read}
            for name, (_, p) in users.items()
        ],
        "topic_permissions": [
            {"user": name, "vhost": vhost, "exchange": p.topic_exchange, "write": p.topic_write, "read": p.topic_read}
            for name, (_, p) in users.items()
            if p.topic_exchange
        ],
    }


class BrokerAdmin(Protocol):
    def apply(self, definitions: dict[str, Any]) -> None: ...
    def delete_users(self, names: Iterable[str]) -> None: ...


class Rabbitmqctl:
    """The broker on this machine, through its command-line tool (root, or the rabbitmq user)."""

    def __init__(self, command: str) -> None:
        self._command = command

    def _run(self, *args: str) -> None:
        done = subprocess.run([self._command, "-q", *args], check=False, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {args[0]} failed: {(done.stderr or done.stdout).strip()}")

    def apply(self, definitions: dict[str, Any]) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
            json.dump(definitions, file)
            file.flush()
            os.chmod(file.name, 0o644)  # the broker's own user reads it
            self._run("import_definitions", file.name)

    def delete_users(self, names: Iterable[str]) -> None:
        for name in names:
            self._run("delete_user", name)


class ManagementApi:
    """The broker's management plugin (HTTP), with the administrator credentials of the AMQP URL."""

    def __init__(self, base_url: str, user: str, password: str) -> None:
        self._http = httpx.Client(base_url=base_url, auth=(user, password), timeout=30)

    @classmethod
    def answering(cls, rabbitmq_url: str, port: int = 15672) -> "ManagementApi | None":
        parts = urlsplit(rabbitmq_url)
        api = cls(f"http://{parts.hostname or '127.0.0.1'}:{port}", unquote(parts.username or "guest"), unquote(parts.password or "guest"))
        try:
            if api._http.get("/api/whoami").status_code == 200:
                return api
        except httpx.HTTPError:
            pass
        return None

    def apply(self, definitions: dict[str, Any]) -> None:
        self._http.post("/api/definitions", json=definitions).raise_for_status()

    def delete_users(self, names: Iterable[str]) -> None:
        for name in names:
            self._http.delete(f"/api/users/{quote(name, safe='')}")


def admin_for(rabbitmq_url: str) -> BrokerAdmin | None:
    """How users can be made on the broker at `rabbitmq_url` from here; None when they cannot."""
    if (api := ManagementApi.answering(rabbitmq_url)) is not None:
        return api
    host = urlsplit(rabbitmq_url).hostname or "127.0.0.1"
    command = shutil.which("rabbitmqctl") or ("/usr/sbin/rabbitmqctl" if Path("/usr/sbin/rabbitmqctl").exists() else None)
    if command and host in ("127.0.0.1", "localhost", "::1") and os.geteuid() == 0:
        return Rabbitmqctl(command)
    return None


def vhost_of(rabbitmq_url: str) -> str:
    path = urlsplit(rabbitmq_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def url_as(rabbitmq_url: str, user: str, password: str) -> str:
    """`rabbitmq_url` with another user's credentials."""
    parts = urlsplit(rabbitmq_url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, parts.fragment))


def user_of_url(rabbitmq_url: str) -> str:
    return unquote(urlsplit(rabbitmq_url).username or "guest")


@dataclass(frozen=True)
class StackUsers:
    """The local stack's users and their passwords (kept in `<run dir>/rabbitmq/users.json`, owner only)."""

    passwords: dict[str, str]
    services: dict[str, str]  # service → its user
    system: str  # the demo's integrating system

    def service_url(self, rabbitmq_url: str, service: str) -> str:
        user = self.services[service]
        return url_as(rabbitmq_url, user, self.passwords[user])

    def system_url(self, rabbitmq_url: str) -> str:
        return url_as(rabbitmq_url, self.system, self.passwords[self.system])


def _names(namespace: str, services: Iterable[str]) -> tuple[dict[str, str], str]:
    return {service: service_user(namespace, service) for service in services}, service_user(namespace, "demo-integrator")


def load(directory: Path, namespace: str, services: Iterable[str]) -> StackUsers | None:
    """The users `prepare` made, if it did."""
    path = directory / USERS_FILE
    if not path.exists():
        return None
    passwords = json.loads(path.read_text())
    by_service, system = _names(namespace, services)
    if not all(user in passwords for user in [*by_service.values(), system]):
        return None
    return StackUsers(passwords, by_service, system)


def prepare(directory: Path, rabbitmq_url: str, namespace: str, services: Iterable[str]) -> StackUsers | None:
    """Make (or bring up to date) the stack's users on the broker; None when the broker cannot be
    administered from here (then every service uses `rabbitmq_url` as it is)."""
    path = directory / USERS_FILE
    admin = admin_for(rabbitmq_url)
    if admin is None:
        path.unlink(missing_ok=True)
        return None
    directory.mkdir(parents=True, exist_ok=True)
    passwords: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    by_service, system = _names(namespace, services)
    wanted = {user: service_permissions(namespace, service) for service, user in by_service.items()}
    wanted[system] = system_permissions(namespace, system)
    for user in wanted:
        passwords.setdefault(user, secrets.token_urlsafe(24))
    admin.apply(definitions(vhost_of(rabbitmq_url), {user: (passwords[user], p) for user, p in wanted.items()}))
    partial = path.with_name(f".{path.name}.part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(passwords, out, indent=2)
    partial.rename(path)
    return StackUsers(passwords, by_service, system)
