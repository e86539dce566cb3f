"""`python -m publipost_bus.dlq`: the dead-letter queues, for the people who run Publipost.

    list                              every consumer's dead-letter queue and how many messages wait in it
    show QUEUE [--message-id ID]      its messages: id, reason, headers, body (they stay in the queue)
    replay QUEUE (--all | --message-id ID...) [--keep]
                                      send messages back to the consumer they failed in
    purge QUEUE (--all | --message-id ID...)
                                      delete messages

QUEUE is a consumer queue or its dead-letter queue, with or without the namespace
(`merge.merge.requested`, `publipost.merge.merge.requested.dlq`). The broker is RABBITMQ_URL and the
namespace PUBLIPOST_NAMESPACE, as for the services (or --rabbitmq-url, --namespace).

A replayed message goes to the queue it was dead-lettered from (through the default exchange, as a
retry does), not to the events exchange: the other consumers of its event handled it already. It keeps
its message id and body, so a consumer that has handled it skips it: replaying a message twice
processes it once. Its attempt count starts again; the dead-letter headers are dropped.

Reading a queue takes its messages without acknowledging them and closes the channel, which puts back
every message not replayed or purged. (RabbitMQ 4 gives quorum queues a default delivery limit of 20:
on a broker where that applies to the dead-letter queues, showing a message twenty times drops it.)
"""

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aio_pika
import publipost_contracts
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from aiormq.exceptions import ChannelNotFoundEntity
from publipost_settings import ServiceSettings

from .publishers import broker_user
from .topology import (
    ATTEMPT_HEADER,
    DEAD_LETTER_REASON_HEADER,
    DEAD_LETTERED_AT_HEADER,
    DLQ_SUFFIX,
    ROUTING_KEY_HEADER,
)

ASYNCAPI = Path(publipost_contracts.__file__).resolve().parents[1] / "asyncapi.json"
DEFAULT_NAMESPACE = "publipost"  # the namespace contracts/asyncapi.json is written in
REPLAYED_AT_HEADER = "x-publipost-replayed-at"
# Headers that describe a failure, not the message: a replayed copy starts afresh.
FAILURE_HEADERS = (ATTEMPT_HEADER, DEAD_LETTER_REASON_HEADER, DEAD_LETTERED_AT_HEADER, "x-delivery-count")
BROKER_DEATH_HEADERS = ("x-death", "x-first-death-", "x-last-death-")
BODY_SHOWN_CHARS = 4000


def consumer_queues(namespace: str) -> list[str]:
    """Every consumer queue of the six services, from the AsyncAPI document generated from their code (a
    contract test keeps the two in step), in `namespace`. Queues cannot be listed over AMQP."""
    document = json.loads(ASYNCAPI.read_text())
    names = {
        channel["bindings"]["amqp"]["queue"]["name"]
        for channel in document["channels"].values()
        if channel["bindings"]["amqp"].get("is") == "queue"
    }
    prefix = f"{DEFAULT_NAMESPACE}."
    return sorted(f"{namespace}.{name.removeprefix(prefix)}" for name in names if name.startswith(prefix))


@dataclass(frozen=True)
class Target:
    """A consumer queue and its dead-letter queue."""

    queue: str
    dlq: str

    @classmethod
    def named(cls, name: str, namespace: str) -> "Target":
        if not name.startswith(f"{namespace}."):
            name = f"{namespace}.{name}"
        queue = name.removesuffix(DLQ_SUFFIX)
        return cls(queue, f"{queue}{DLQ_SUFFIX}")


def reason_of(message: AbstractIncomingMessage) -> str:
    """Why the message is there: the consumer's reason, or the broker's (a delivery limit, a rejection)."""
    headers = message.headers or {}
    if DEAD_LETTER_REASON_HEADER in headers:
        return _text(headers[DEAD_LETTER_REASON_HEADER])
    if "x-first-death-reason" in headers:
        reason = _text(headers["x-first-death-reason"])
        return f"dead-lettered by the broker: {reason} (from {_text(headers.get('x-first-death-queue', '?'))})"
    return "unknown (no dead-letter header)"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _plain(value: Any) -> Any:
    """A header value as JSON can write it (AMQP tables hold bytes, timestamps, nested tables)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _body(message: AbstractIncomingMessage) -> Any:
    try:
        return json.loads(message.body)
    except ValueError:
        return message.body.decode("utf-8", "replace")


def described(message: AbstractIncomingMessage, dlq: str) -> dict[str, Any]:
    headers = _plain(message.headers or {})
    return {
        "queue": dlq,
        "message_id": message.message_id,
        "correlation_id": message.correlation_id,
        "type": message.type,
        "reason": reason_of(message),
        "dead_lettered_at": headers.get(DEAD_LETTERED_AT_HEADER),
        "routing_key": headers.get(ROUTING_KEY_HEADER),
        "bytes": len(message.body),
        "headers": headers,
        "body": _body(message),
    }


def replay_copy(message: AbstractIncomingMessage, user_id: str | None = None) -> aio_pika.Message:
    """The message as first published: same body, id and properties, without the traces of its failure."""
    headers = {
        key: value
        for key, value in (message.headers or {}).items()
        if key not in FAILURE_HEADERS and not key.startswith(BROKER_DEATH_HEADERS)
    }
    headers[REPLAYED_AT_HEADER] = datetime.now(UTC).isoformat()
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        app_id=message.app_id,
        timestamp=message.timestamp,
        user_id=user_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


class CommandError(Exception):
    pass


class DeadLetters:
    def __init__(self, connection: AbstractRobustConnection, namespace: str) -> None:
        self.connection = connection
        self.namespace = namespace
        # A replayed copy names whoever replays it (user_id, checked by the broker): consumers take it when
        # that user is one of the services' (PUBLIPOST_BUS_SERVICE_USERS), as from its first publisher.
        self.user_id = broker_user(str(connection.url))

    async def count(self, queue: str) -> int | None:
        """Messages in `queue`; None when it does not exist (its service never started in this namespace)."""
        channel = await self.connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except ChannelNotFoundEntity:
            return None
        finally:
            if not channel.is_closed:
                await channel.close()
        return declared.declaration_result.message_count

    @asynccontextmanager
    async def taken(self, queue: str) -> AsyncIterator[tuple[AbstractChannel, list[AbstractIncomingMessage]]]:
        """Every message in `queue` now, unacknowledged: what the caller does not acknowledge goes back when
        the channel closes. Only those there at the start: a message dead-lettered again meanwhile waits."""
        channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            try:
                declared = await channel.declare_queue(queue, passive=True)
            except ChannelNotFoundEntity:
                raise CommandError(f"no queue {queue} in this broker") from None
            messages = []
            for _ in range(declared.declaration_result.message_count):
                message = await declared.get(no_ack=False, fail=False)
                if message is None:
                    break
                messages.append(message)
            yield channel, messages
        finally:
            if not channel.is_closed:
                await channel.close()


def _selected(
    messages: Sequence[AbstractIncomingMessage], ids: Sequence[str] | None
) -> list[AbstractIncomingMessage]:
    if ids is None:
        return list(messages)
    chosen = [m for m in messages if m.message_id in ids]
    missing = set(ids) - {m.message_id for m in chosen}
    if missing:
        raise CommandError(f"no message with id {', '.join(sorted(missing))} in this queue")
    return chosen


async def list_command(dead: DeadLetters, args: argparse.Namespace) -> None:
    queues = [*consumer_queues(dead.namespace), *(Target.named(q, dead.namespace).queue for q in args.queue)]
    rows = []
    for queue in dict.fromkeys(queues):
        dlq = f"{queue}{DLQ_SUFFIX}"
        rows.append((dlq, await dead.count(dlq)))
    if args.json:
        for dlq, count in rows:
            print(json.dumps({"queue": dlq, "messages": count}))
        return
    width = max(len(dlq) for dlq, _ in rows)
    print(f"{'DEAD-LETTER QUEUE':<{width}}  MESSAGES")
    for dlq, count in rows:
        print(f"{dlq:<{width}}  {'absent' if count is None else count}")


async def show_command(dead: DeadLetters, args: argparse.Namespace) -> None:
    target = Target.named(args.queue, dead.namespace)
    async with dead.taken(target.dlq) as (_, messages):
        chosen = _selected(messages, args.message_id)[: args.limit]
        for n, message in enumerate(chosen, 1):
            shown = described(message, target.dlq)
            if args.json:
                print(json.dumps(shown, default=str))
                continue
            print(f"--- {n} of {len(messages)} in {target.dlq}: message {shown['message_id']} ({shown['type']})")
            print(f"reason:           {shown['reason']}")
            print(f"dead-lettered at: {shown['dead_lettered_at'] or '?'}")
            print(f"correlation id:   {shown['correlation_id']}")
            print("headers:")
            for key, value in shown["headers"].items():
                print(f"  {key}: {json.dumps(value, default=str)}")
            body = json.dumps(shown["body"], indent=2, default=str)
            cut = f"\n  ... ({len(body) - BODY_SHOWN_CHARS} more characters)" if len(body) > BODY_SHOWN_CHARS else ""
            print(f"body ({shown['bytes']} bytes):\n{body[:BODY_SHOWN_CHARS]}{cut}")
        if not messages:
            print(f"{target.dlq} is empty")


async def replay_command(dead: DeadLetters, args: argparse.Namespace) -> None:
    target = Target.named(args.queue, dead.namespace)
    if await dead.count(target.queue) is None:
        raise CommandError(f"no consumer queue {target.queue}: its service has not started in this namespace")
    async with dead.taken(target.dlq) as (channel, messages):
        chosen = _selected(messages, None if args.all else args.message_id)
        for message in chosen:
            # Confirmed by the broker (publisher confirms; an unroutable copy raises) before the original goes.
            await channel.default_exchange.publish(replay_copy(message, dead.user_id), routing_key=target.queue, mandatory=True)
            if not args.keep:
                await message.ack()
    kept = " (kept in the dead-letter queue too)" if args.keep else ""
    print(f"replayed {len(chosen)} message(s) from {target.dlq} to {target.queue}{kept}")


async def purge_command(dead: DeadLetters, args: argparse.Namespace) -> None:
    target = Target.named(args.queue, dead.namespace)
    if args.all:
        channel = await dead.connection.channel()
        try:
            queue = await channel.declare_queue(target.dlq, passive=True)
        except ChannelNotFoundEntity:
            raise CommandError(f"no queue {target.dlq} in this broker") from None
        purged = (await queue.purge()).message_count
        await channel.close()
    else:
        async with dead.taken(target.dlq) as (_, messages):
            chosen = _selected(messages, args.message_id)
            for message in chosen:
                await message.ack()
            purged = len(chosen)
    print(f"purged {purged} message(s) from {target.dlq}")


COMMANDS = {"list": list_command, "show": show_command, "replay": replay_command, "purge": purge_command}


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--rabbitmq-url", help="the broker (default: RABBITMQ_URL)")
    common.add_argument("--namespace", help="prefix of the queues (default: PUBLIPOST_NAMESPACE, or publipost)")
    top = argparse.ArgumentParser(
        prog="python -m publipost_bus.dlq",
        description="Publipost's dead-letter queues: list, show, replay, purge.",
        epilog="Messages are chosen by message id, which is the event id of every message Publipost publishes.",
    )
    commands = top.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("list", parents=[common], help="each dead-letter queue and its message count")
    listing.add_argument("--queue", action="append", default=[], help="a consumer queue besides the services' own")
    listing.add_argument("--json", action="store_true", help="one JSON object a line")

    show = commands.add_parser("show", parents=[common], help="the messages of a dead-letter queue")
    show.add_argument("queue")
    show.add_argument("--message-id", action="append", help="only this message (repeatable)")
    show.add_argument("--limit", type=int, default=20, help="at most this many messages (default 20)")
    show.add_argument("--json", action="store_true", help="one JSON object a message")

    for name, help_text in (("replay", "send messages back to their consumer"), ("purge", "delete messages")):
        command = commands.add_parser(name, parents=[common], help=help_text)
        command.add_argument("queue")
        which = command.add_mutually_exclusive_group(required=True)
        which.add_argument("--all", action="store_true", help="every message of the queue")
        which.add_argument("--message-id", action="append", help="this message (repeatable)")
        if name == "replay":
            command.add_argument("--keep", action="store_true", help="leave the messages in the dead-letter queue")
    return top


async def run(args: argparse.Namespace) -> None:
    overrides = {k: v for k, v in (("rabbitmq_url", args.rabbitmq_url), ("namespace", args.namespace)) if v}
    settings = ServiceSettings(service_name="dlq", **overrides)
    connection = await aio_pika.connect_robust(settings.rabbitmq_url)
    async with connection:
        await COMMANDS[args.command](DeadLetters(connection, settings.namespace), args)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        asyncio.run(run(args))
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
