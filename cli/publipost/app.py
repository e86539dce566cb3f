"""`publipost`: Publipost from a terminal. People log in, start mailings from a file and follow them, download
print files, send and re-send by e-mail, read the send history and manage campaigns; SREs migrate the store
and look after the dead-letter queues. Each command calls the services' HTTP APIs (URLs from
PUBLIPOST_<SERVICE>_URL, the local stack's by default) with the credential `publipost login` stored."""

import asyncio
from enum import Enum
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from . import login, mailings, sending
from .api import CommandFailed
from .campaigns import campaigns_app
from .dead_letters import dlq_app
from .mailings import mailing_app
from .migrate import SERVICES
from .session import Session


class SaysWhatFailed(TyperGroup):
    """An expected failure (a refusal, a service out of reach) is one line on stderr and exit status 1, never
    a traceback; Ctrl-C while following progress leaves the work going on."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CommandFailed as failure:
            typer.echo(f"error: {failure}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("stopped; the work goes on in the services (publipost watch / history to follow it)", err=True)
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=SaysWhatFailed,
    help=__doc__,
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # an unexpected error's traceback stays plain, for a bug report
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def start(ctx: typer.Context) -> None:
    # A test passes a Session of its own as `obj`; a person gets the one their environment describes.
    if ctx.obj is None:
        ctx.obj = Session.from_environment()


MigratedService = Enum("MigratedService", {name.replace("-", "_"): name for name in SERVICES}, type=str)


@app.command()
def migrate(
    service: Annotated[
        list[MigratedService] | None, typer.Option(help="Only this service (repeatable); default: all.")
    ] = None,
) -> None:
    """Create indexes and run data upgrades, recorded (before every release: the k8s Job, `make up`)."""
    from publipost_logging import configure_logging

    from .migrate import migrate as migrate_services

    configure_logging("migrate", "WARNING")
    done = asyncio.run(migrate_services([s.value for s in service] if service else SERVICES))
    for name, migrated in done.items():
        ran = f", ran {', '.join(migrated.upgrades)}" if migrated.upgrades else ""
        print(f"{name:<20} schema {migrated.before} → {migrated.after}{ran}")


app.command()(login.login)
app.command()(login.logout)
app.command()(login.whoami)
app.add_typer(mailing_app, name="mailing")
app.command()(mailings.watch)
app.command()(mailings.download)
app.command()(sending.send)
app.command("resend-unsent")(sending.resend_unsent)
app.command()(sending.history)
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(dlq_app, name="dlq")


def main() -> None:
    """The console script `publipost` (deploy/setup.sh writes it) and `python -m publipost`."""
    app(prog_name="publipost")
