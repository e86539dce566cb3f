"""`publipost dlq list | show | replay | purge`: the dead-letter queues, through publipost_bus.dlq (the same
commands as `python -m publipost_bus.dlq`, README "Dead letters"), against RabbitMQ directly."""

import argparse
import asyncio
import logging
from typing import Annotated, Any

import typer

from .api import CommandFailed

dlq_app = typer.Typer(help="Dead-letter queues: list them, show their messages, replay or purge them.")
RabbitmqUrl = Annotated[str | None, typer.Option("--rabbitmq-url", help="The broker (default: RABBITMQ_URL).")]
Namespace = Annotated[
    str | None, typer.Option(help="Prefix of the queues (default: PUBLIPOST_NAMESPACE, or publipost).")
]
Queue = Annotated[str, typer.Argument(help="A consumer queue, with or without the namespace and .dlq.")]
MessageIds = Annotated[list[str] | None, typer.Option("--message-id", help="This message (repeatable).")]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object a line.")]


def run_dlq(command: str, rabbitmq_url: str | None, namespace: str | None, **fields: Any) -> None:
    # Imported here: the bus's modules take a second to load, which no other command needs to pay.
    from aiormq.exceptions import AMQPConnectionError
    from publipost_bus import dlq

    logging.getLogger("aiormq").setLevel(logging.CRITICAL)  # its report of a refused connection repeats ours
    args = argparse.Namespace(command=command, rabbitmq_url=rabbitmq_url, namespace=namespace, **fields)
    try:
        asyncio.run(dlq.run(args))
    except dlq.CommandError as exc:
        raise CommandFailed(str(exc)) from exc
    except (OSError, AMQPConnectionError) as exc:
        raise CommandFailed(f"cannot reach RabbitMQ: {exc} (RABBITMQ_URL or --rabbitmq-url says where)") from exc


def _chosen(every: bool, message_ids: list[str] | None) -> list[str] | None:
    if every == bool(message_ids):
        raise typer.BadParameter("give --all or --message-id (one or more), not both", param_hint="--all")
    return message_ids


@dlq_app.command("list")
def list_queues(
    queue: Annotated[list[str] | None, typer.Option(help="A consumer queue besides the services' own.")] = None,
    as_json: JsonOption = False,
    rabbitmq_url: RabbitmqUrl = None,
    namespace: Namespace = None,
) -> None:
    """Each consumer's dead-letter queue and its message count."""
    run_dlq("list", rabbitmq_url, namespace, queue=queue or [], json=as_json)


@dlq_app.command("show")
def show(
    queue: Queue,
    message_id: MessageIds = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many messages.")] = 20,
    as_json: JsonOption = False,
    rabbitmq_url: RabbitmqUrl = None,
    namespace: Namespace = None,
) -> None:
    """A dead-letter queue's messages: id, why, headers, body. They stay in the queue."""
    run_dlq("show", rabbitmq_url, namespace, queue=queue, message_id=message_id, limit=limit, json=as_json)


@dlq_app.command("replay")
def replay(
    queue: Queue,
    every: Annotated[bool, typer.Option("--all", help="Every message of the queue.")] = False,
    message_id: MessageIds = None,
    keep: Annotated[bool, typer.Option(help="Leave the messages in the dead-letter queue too.")] = False,
    rabbitmq_url: RabbitmqUrl = None,
    namespace: Namespace = None,
) -> None:
    """Send messages back to the consumer queue they were dead-lettered from (handled once, however often)."""
    ids = _chosen(every, message_id)
    run_dlq("replay", rabbitmq_url, namespace, queue=queue, all=every, message_id=ids, keep=keep)


@dlq_app.command("purge")
def purge(
    queue: Queue,
    every: Annotated[bool, typer.Option("--all", help="Every message of the queue.")] = False,
    message_id: MessageIds = None,
    rabbitmq_url: RabbitmqUrl = None,
    namespace: Namespace = None,
) -> None:
    """Delete messages from a dead-letter queue."""
    ids = _chosen(every, message_id)
    run_dlq("purge", rabbitmq_url, namespace, queue=queue, all=every, message_id=ids)
