"""The local stack as background processes: RabbitMQ, SecantusDB, the SMTP capture server, the development
issuer, the six services and the web console.

Everything it starts leaves a pid file and a log under one run folder
(`.local/` by default); `down` stops what `up` started and nothing else.
"""

import importlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import httpx
from cryptography.fernet import Fernet

from . import broker_users as rabbitmq_users
from . import dev_issuer
from .dev_issuer import DEV_TENANT
from .processes import Background, ensure_rabbitmq, port_open, start_secantus, wait_for_port

REPO = Path(__file__).resolve().parents[3]
SERVICES = ("template", "recipient-directory", "merge", "render-pdf", "dispatch", "scheduler")
# The web console: no bus, no store of its own (no queue, user, client secret or migration), so not in SERVICES.
CONSOLE = "console"
CONSOLE_KEY_FILE = "session-key"
# Everything runs on this machine: a tenant's SMTP account or Gotenberg URL may name loopback (publipost_outbound).
OUTBOUND_ALLOW = ["127.0.0.0/8", "::1"]


@dataclass(frozen=True)
class StackConfig:
    """Where the stack runs. Every value has an environment variable, so tests run a second stack beside yours."""

    run_dir: Path = REPO / ".local"
    namespace: str = "publipost"
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    mongodb_url: str | None = None  # None: start SecantusDB
    mongodb_port: int = 27117
    smtp_port: int = 2525
    smtp_capture: bool = True  # False: the services send to whatever server answers on smtp_port (a bench's sink)
    http_port_base: int = (
        8100  # template on base+1 ... scheduler on base+6, the development issuer on base+7, console base+8
    )
    dev_issuer: bool = True  # False: the services trust the issuer PUBLIPOST_AUTH_ISSUER_URL names, if any
    # A RabbitMQ user per service and one for the demo's integrating system (rabbitmq_users.py), when the broker
    # can be administered from here; else every service connects as rabbitmq_url says.
    broker_users: bool = False
    console: bool = False  # the web console; `make up` runs it, the tests' and benchmarks' stacks need it not
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> "StackConfig":
        env = os.environ
        return cls(
            run_dir=Path(env.get("PUBLIPOST_RUN_DIR", REPO / ".local")),
            namespace=env.get("PUBLIPOST_NAMESPACE", "publipost"),
            rabbitmq_url=env.get("RABBITMQ_URL", cls.rabbitmq_url),
            mongodb_url=env.get("MONGODB_URL"),
            mongodb_port=int(env.get("PUBLIPOST_MONGODB_PORT", cls.mongodb_port)),
            smtp_port=int(env.get("PUBLIPOST_SMTP_PORT", cls.smtp_port)),
            http_port_base=int(env.get("PUBLIPOST_HTTP_PORT_BASE", cls.http_port_base)),
            dev_issuer=not env.get("PUBLIPOST_AUTH_ISSUER_URL") and env.get("PUBLIPOST_DEV_ISSUER", "1") != "0",
            broker_users=env.get("PUBLIPOST_BROKER_USERS", "1") != "0",
            console=env.get("PUBLIPOST_CONSOLE", "1") != "0",
        )

    def port(self, service: str) -> int:
        return self.http_port_base + 1 + SERVICES.index(service)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.port(service)}"

    @property
    def issuer_port(self) -> int:
        return self.http_port_base + 1 + len(SERVICES)

    @property
    def issuer_url(self) -> str:
        return f"http://127.0.0.1:{self.issuer_port}"

    @property
    def console_port(self) -> int:
        return self.issuer_port + 1

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.console_port}"

    @property
    def issuer_dir(self) -> Path:
        """The development issuer's signing key and its clients' and users' secrets (made at `make up`)."""
        return self.run_dir / "issuer"

    @property
    def users_dir(self) -> Path:
        """The RabbitMQ users' passwords (made at `make up` when the broker can be administered from here)."""
        return self.run_dir / "rabbitmq"

    def stack_users(self) -> rabbitmq_users.StackUsers | None:
        return rabbitmq_users.load(self.users_dir, self.namespace, SERVICES) if self.broker_users else None

    def system_rabbitmq_url(self) -> str:
        """What the demo's integrating system connects with: its own user when the stack has users."""
        users = self.stack_users()
        return users.system_url(self.rabbitmq_url) if users else self.rabbitmq_url

    @property
    def database_url(self) -> str:
        return self.mongodb_url or f"mongodb://127.0.0.1:{self.mongodb_port}/"

    @property
    def mail_dir(self) -> Path:
        return self.run_dir / "mail"

    def service_env(self, service: str) -> dict[str, str]:
        return {
            "RABBITMQ_URL": self.rabbitmq_url,
            **self.bus_env(service),
            "PUBLIPOST_OUTBOUND_ALLOW": json.dumps(OUTBOUND_ALLOW),
            "MONGODB_URL": self.database_url,
            "PUBLIPOST_NAMESPACE": self.namespace,
            "PUBLIPOST_HTTP_PORT": str(self.port(service)),
            **self.service_urls(),
            "PUBLIPOST_SMTP_HOST": "127.0.0.1",
            "PUBLIPOST_SMTP_PORT": str(self.smtp_port),
            **self.identity_env(service),
            **self.extra_env,
        }

    def service_urls(self) -> dict[str, str]:
        return {
            "PUBLIPOST_TEMPLATE_URL": self.url("template"),
            "PUBLIPOST_DIRECTORY_URL": self.url("recipient-directory"),
            "PUBLIPOST_MERGE_URL": self.url("merge"),
            "PUBLIPOST_DISPATCH_URL": self.url("dispatch"),
            "PUBLIPOST_SCHEDULER_URL": self.url("scheduler"),
            "PUBLIPOST_RENDER_URL": self.url("render-pdf"),
        }

    def console_env(self) -> dict[str, str]:
        """The services' addresses, the issuer people sign in at, and the key of the session cookies (made once
        in the run folder, so a restart of the console signs nobody out)."""
        key_file = self.run_dir / CONSOLE / CONSOLE_KEY_FILE
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(Fernet.generate_key().decode())
        identity = (
            {"PUBLIPOST_AUTH_ISSUER_URL": self.issuer_url, "PUBLIPOST_AUTH_DEV_ISSUER": "true"}
            if self.dev_issuer
            else {}
        )
        return {
            "PUBLIPOST_HTTP_PORT": str(self.console_port),
            **self.service_urls(),
            **identity,
            "PUBLIPOST_SESSION_KEY": key_file.read_text().strip(),
            **self.extra_env,
        }

    def bus_env(self, service: str) -> dict[str, str]:
        """The service's own RabbitMQ user, the users trusted for every tenant (the services', and the
        administrator of rabbitmq_url, with which `make dlq` replays), and the demo's integrating system."""
        users = self.stack_users()
        if users is None:
            return {}
        trusted = [*users.services.values(), rabbitmq_users.user_of_url(self.rabbitmq_url)]
        return {
            "RABBITMQ_URL": users.service_url(self.rabbitmq_url, service),
            "PUBLIPOST_BUS_SERVICE_USERS": json.dumps(trusted),
            "PUBLIPOST_BUS_PUBLISHERS": json.dumps({users.system: [dev_issuer.DEV_TENANT]}),
        }

    def identity_env(self, service: str) -> dict[str, str]:
        """The development issuer, trusted by the service, and the service's own client there (authentication
        is required, as the settings default it). Without it, the services trust the issuer the environment
        names, or take API keys only."""
        if not self.dev_issuer:
            return {}
        client_id = dev_issuer.client_id_of(service)
        secret = dev_issuer.prepare(self.issuer_dir, SERVICES)["clients"][client_id]["secret"]
        return {
            "PUBLIPOST_AUTH_ISSUER_URL": self.issuer_url,
            "PUBLIPOST_AUTH_DEV_ISSUER": "true",
            "PUBLIPOST_AUTH_CLIENT_ID": client_id,
            "PUBLIPOST_AUTH_CLIENT_SECRET": secret,
        }

    def credentials(
        self, tenant_id: str = DEV_TENANT, roles: tuple[str, ...] = ("operator", "viewer", "integrator")
    ) -> dict[str, str]:
        """Headers of a call by a person of `tenant_id` with `roles`, in a token the development issuer's key
        signs: for the tools that drive a stack as some tenant (benchmarks, the fault harness)."""
        if not self.dev_issuer:
            raise RuntimeError("this stack runs no development issuer: call with a token of your issuer or an API key")
        dev_issuer.prepare(self.issuer_dir, SERVICES)
        subject = f"localstack:{tenant_id}"
        token = dev_issuer.signed_token(self.issuer_dir, self.issuer_url, tenant_id, roles, subject)
        return {"Authorization": f"Bearer {token}"}


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config

    def process(self, name: str) -> Background:
        return Background(name, self.config.run_dir)

    def up(self, timeout: float = 180.0) -> None:
        config = self.config
        config.run_dir.mkdir(parents=True, exist_ok=True)
        ensure_rabbitmq(config.rabbitmq_url)
        say(f"RabbitMQ       {config.rabbitmq_url.split('@')[-1]}")
        if config.broker_users:
            self.prepare_broker_users()
        if config.mongodb_url is None:
            self.start_database()
        say(f"MongoDB        {config.database_url}{'' if config.mongodb_url else ' (SecantusDB)'}")
        if config.smtp_capture:
            self.start_smtp()
            say(f"SMTP capture   127.0.0.1:{config.smtp_port} → {config.mail_dir}")
        if config.dev_issuer:
            self.start_issuer()
            say(
                f"dev issuer     {config.issuer_url}  (users and clients: {config.issuer_dir / dev_issuer.CLIENTS_FILE})"
            )
        self.migrate()
        for service in SERVICES:
            self.start_service(service)
        for service in SERVICES:
            self.wait_ready(service, timeout)
            say(f"{service:<14} {config.url(service)}  ready")
        if config.console:
            self.start_service(CONSOLE)
            self.wait_ready(CONSOLE, timeout)
            say(
                f"{CONSOLE:<14} {config.console_url}  ready (sign in as a user of {config.issuer_dir / dev_issuer.CLIENTS_FILE})"
            )

    def prepare_broker_users(self) -> None:
        config = self.config
        users = rabbitmq_users.prepare(config.users_dir, config.rabbitmq_url, config.namespace, SERVICES)
        if users is None:
            say(
                "RabbitMQ users cannot be made from here (neither rabbitmqctl as root nor the management API): "
                f"every service connects as {rabbitmq_users.user_of_url(config.rabbitmq_url)!r}"
            )
        else:
            say(
                f"RabbitMQ users {', '.join(users.services.values())}, {users.system} (passwords: "
                f"{config.users_dir / rabbitmq_users.USERS_FILE})"
            )

    def start_database(self) -> None:
        start_secantus(self.config.mongodb_port, self.config.run_dir / "secantus", self.config.run_dir)

    def start_smtp(self) -> None:
        command = [sys.executable, "-m", "publipost_localstack.smtp_capture", "--port", str(self.config.smtp_port)]
        self.process("smtp-capture").start([*command, "--dir", str(self.config.mail_dir)])
        wait_for_port("127.0.0.1", self.config.smtp_port, 30, "SMTP capture")

    def start_issuer(self) -> None:
        """The signing key and the clients' secrets are made here when missing, before any service needs them."""
        dev_issuer.prepare(self.config.issuer_dir, SERVICES)
        command = [
            sys.executable,
            "-m",
            "publipost_localstack.dev_issuer",
            "serve",
            "--dir",
            str(self.config.issuer_dir),
        ]
        self.process("dev-issuer").start([*command, "--port", str(self.config.issuer_port)])
        wait_for_port("127.0.0.1", self.config.issuer_port, 30, "the development issuer")

    def migrate(self) -> None:
        """The stored schema of every service brought to this code's, as before a release (`python -m publipost
        migrate`): the services wait for it, not ready, otherwise."""
        env = {**os.environ, **self.config.service_env("template")}  # the database and namespace every service shares
        result = subprocess.run(
            [sys.executable, "-m", "publipost", "migrate"],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"the migration failed:\n{result.stderr[-4000:]}")
        say("schema         migrated (python -m publipost migrate)")

    def start_service(self, service: str) -> int:
        module = f"publipost_{service.replace('-', '_')}.app"
        env = self.config.console_env() if service == CONSOLE else self.config.service_env(service)
        return self.process(service).start([sys.executable, "-m", module], env=env)

    def stop_service(self, service: str) -> bool:
        return self.process(service).stop()

    def wait_ready(self, service: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process(service).pid() is None:
                raise RuntimeError(f"{service} exited while starting:\n{self.log_tail(service)}")
            try:
                if httpx.get(f"{self.url_of(service)}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{service} not ready after {timeout:.0f}s:\n{self.log_tail(service)}")
            time.sleep(0.3)

    def url_of(self, service: str) -> str:
        return self.config.console_url if service == CONSOLE else self.config.url(service)

    def down(self) -> None:
        # The console and services first (they finish in-flight messages on SIGTERM), then what they depend on.
        for name in (CONSOLE, *reversed(SERVICES), "dev-issuer", "smtp-capture", "secantusdb"):
            if self.process(name).stop():
                say(f"{name:<14} stopped")

    async def delete_queues(self) -> None:
        """Leave a shared broker as it was: the queues this stack's services declared in its namespace
        (a test's or a benchmark's stack; `make down` keeps them, with what waits in them)."""
        names = []
        for service in SERVICES:
            package = f"publipost_{service.replace('-', '_')}"
            settings_class = getattr(
                importlib.import_module(f"{package}.settings"),
                "".join(p.title() for p in service.split("-")) + "Settings",
            )
            build = importlib.import_module(f"{package}.app").build
            names += build(settings_class(namespace=self.config.namespace)).bus.queue_names()
        connection = await aio_pika.connect(self.config.rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            for name in names:
                await channel.queue_delete(name)

    def status(self) -> bool:
        everything_up = True
        web = (CONSOLE,) if self.config.console else ()
        names = ("secantusdb", "smtp-capture", *(("dev-issuer",) if self.config.dev_issuer else ()), *SERVICES, *web)
        for name in names:
            pid = self.process(name).pid()
            state = "stopped"
            if pid is not None:
                state = f"running (pid {pid})"
                if name in SERVICES or name == CONSOLE:
                    state += "  ready" if self.ready(name) else "  NOT READY"
            everything_up &= pid is not None or (name == "secantusdb" and self.config.mongodb_url is not None)
            say(f"{name:<14} {state}")
        rabbit = self.config.rabbitmq_url.split("@")[-1].rstrip("/")
        host, _, port = rabbit.partition(":")
        say(f"{'rabbitmq':<14} {'answers' if port_open(host, int(port or 5672)) else 'DOES NOT ANSWER'} on {rabbit}")
        return everything_up

    def ready(self, service: str) -> bool:
        try:
            return httpx.get(f"{self.url_of(service)}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log_tail(self, name: str, lines: int = 30) -> str:
        log = self.process(name).log_file
        if not log.exists():
            return f"(no log at {log})"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def say(line: str) -> None:
    print(line, flush=True)
