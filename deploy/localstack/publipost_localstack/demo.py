"""The demo: play an internal system sending a 200-record mailing through the whole local stack.

Registers the sample template, publishes merge.requested on the bus, then
dispatch.requested once the documents are ready, follows progress, and prints
what a user would check: sent / not sent with reasons, the regrouped
mailings, the combined PDF and the captured e-mails.
"""

import asyncio
import logging
import os
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue
from publipost_bus import broker_user
from publipost_contracts import (
    DispatchCompleted,
    DispatchRequested,
    MailingRegrouped,
    MergeCompleted,
    MergeRejected,
    MergeRequested,
)

from . import dev_issuer
from .records import letter_record
from .stack import REPO, StackConfig

SAMPLE_TEMPLATE = REPO / "samples" / "letter.docx"
TENANT = "demo"
RECORDS = 200
REJECTED = range(10, 60, 10)  # 5 addresses at reject.test: the server refuses them
NO_ADDRESS = (7, 77, 177)  # no e-mail in the record and unknown to the directory
FROM_DIRECTORY = range(100, 110)  # no e-mail in the record, found in the recipient directory


def records() -> list[dict[str, Any]]:
    out = []
    for n in range(1, RECORDS + 1):
        email: str | None = f"client{n}@example.test"
        if n in REJECTED:
            email = f"client{n}@reject.test"
        elif n in NO_ADDRESS or n in FROM_DIRECTORY:
            email = None
        out.append(letter_record(n, record_id=f"rec-{n:04d}", document_number=f"INV-2026-{n:05d}", email=email))
    return out


def credentials(stack: StackConfig) -> dict[str, str]:
    """The demo calls the HTTP APIs as the development issuer's `operator` of tenant demo, signed in with its
    password as a person's tool would; against a stack that trusts another issuer, with PUBLIPOST_API_KEY (a
    key of tenant demo with the operator role: `python -m publipost_auth create --tenant demo ...`)."""
    if api_key := os.environ.get("PUBLIPOST_API_KEY"):
        return {"X-API-Key": api_key}
    if not stack.dev_issuer:
        raise SystemExit("this stack runs no development issuer: set PUBLIPOST_API_KEY to a key of tenant demo")
    return {"Authorization": f"Bearer {dev_issuer.user_token(stack.issuer_url, stack.issuer_dir, 'operator')}"}


class Progress:
    """A bar per stage: redrawn in place on a terminal, a line per change in a log."""

    def __init__(self) -> None:
        self.shown: tuple[str, int] | None = None
        self.tty = sys.stdout.isatty()

    def __call__(self, label: str, done: int, total: int, width: int = 40) -> None:
        if self.shown == (label, done):
            return
        if self.tty and self.shown is not None and self.shown[0] != label:
            sys.stdout.write("\n")
        self.shown = (label, done)
        filled = int(width * done / total) if total else 0
        line = f"{label:<20} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        sys.stdout.write(f"\r{line}" if self.tty else f"{line}\n")
        sys.stdout.flush()

    def end(self) -> None:
        if self.tty and self.shown is not None:
            sys.stdout.write("\n")
        self.shown = None


class Demo:
    def __init__(self, stack: StackConfig) -> None:
        # The demo is an integrating system: it connects as its own RabbitMQ user when the stack made one, and
        # names that user in each message it publishes (the broker checks it; the services check its tenants).
        rabbitmq_url = stack.system_rabbitmq_url()
        self.user_id = broker_user(rabbitmq_url)
        self.broker = RabbitBroker(rabbitmq_url, log_level=logging.DEBUG)  # quiet: the demo prints its own
        self.bar = Progress()
        # What the run produced, for whoever drives the demo (the end-to-end test).
        self.dispatch_id: str | None = None
        self.completed: dict[str, Any] | None = None
        self.regrouped: dict[str, Any] | None = None
        # Publipost declares its exchange; a system may not (no configure permission on it), only use it.
        self.exchange = RabbitExchange(f"{stack.namespace}.events", type=ExchangeType.TOPIC, durable=True, declare=False)
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        headers = credentials(stack)
        self.template = httpx.AsyncClient(base_url=stack.url("template"), headers=headers)
        self.directory = httpx.AsyncClient(base_url=stack.url("recipient-directory"), headers=headers)
        self.merge = httpx.AsyncClient(base_url=stack.url("merge"), headers=headers)
        self.dispatch = httpx.AsyncClient(base_url=stack.url("dispatch"), headers=headers)
        self.run_dir = stack.run_dir
        self.correlation_id = str(uuid.uuid4())
        # An internal system listens to the outcomes on queues of its own.
        for event_type in (MergeCompleted, MergeRejected, DispatchCompleted, MailingRegrouped):
            queue = RabbitQueue(
                f"{self.user_id}.{uuid.uuid4().hex[:8]}.{event_type.routing_key}",  # its queues: <user>.*
                auto_delete=True,
                exclusive=True,
                routing_key=event_type.routing_key,
            )
            self.broker.subscriber(queue, self.exchange)(self._on_event)

    async def _on_event(self, body: dict[str, Any]) -> None:
        if body.get("correlation_id") == self.correlation_id:
            await self.inbox.put(body)

    async def wait_for(self, *types: type, progress: Any = None) -> dict[str, Any]:
        wanted = {t.routing_key for t in types}
        while True:
            try:
                body = await asyncio.wait_for(self.inbox.get(), timeout=0.5)
            except TimeoutError:
                if progress is not None:
                    try:
                        await progress()
                    except httpx.HTTPError:
                        pass  # a service restarting: progress is shown again once it answers
                continue
            if body["type"] in wanted:
                return body

    async def publish(self, event: Any) -> None:
        await self.broker.publish(
            event.model_dump_json().encode(),
            exchange=self.exchange,
            routing_key=event.routing_key,
            message_id=str(event.event_id),
            correlation_id=event.correlation_id,
            content_type="application/json",
            user_id=self.user_id,
            persist=True,
        )

    async def run(self) -> int:
        self.started_ns = time.time_ns()
        await self.broker.start()
        try:
            return await self._run()
        finally:
            await self.broker.stop()
            for client in (self.template, self.directory, self.merge, self.dispatch):
                await client.aclose()

    async def _run(self) -> int:
        uploaded = await self.template.post(
            "/templates",
            data={"name": "Premium notice", "custom_fields": "signatory"},
            files={"file": ("letter.docx", SAMPLE_TEMPLATE.read_bytes())},
        )
        uploaded.raise_for_status()
        template = uploaded.json()
        print(f"template registered: {template['name']} ({template['id']}), fields: {', '.join(template['fields'])}")
        for n in FROM_DIRECTORY:
            put = await self.directory.put(
                f"/recipients/C{n:05d}",
                json={"email": f"billing{n}@example.test", "name": f"Client {n}"},
            )
            put.raise_for_status()
        print(f"recipient directory: {len(FROM_DIRECTORY)} recipients registered by customer number")

        request_id = str(uuid.uuid4())
        await self.publish(
            MergeRequested(
                tenant_id=TENANT,
                correlation_id=self.correlation_id,
                request_id=request_id,
                template_id=template["id"],
                name="Premium notices November 2026",
                records=records(),
                custom_fields={"signatory": "Claire Martin, Customer Service"},
                output="pdf",
            )
        )
        print(f"merge.requested published: {RECORDS} records (request {request_id})")

        mailing_id = None

        async def merge_progress() -> None:
            listing = (await self.merge.get("/mailings", params={"per_page": 5})).json()["items"]
            mine = next((m for m in listing if m["name"].startswith("Premium notices November 2026")), None)
            if mine is None:
                return
            if mine["status"] == "converting":
                detail = (await self.merge.get(f"/mailings/{mine['id']}")).json()
                self.bar("converting to PDF", detail["converted"] + detail["failed"], RECORDS)
            else:
                self.bar("rendering documents", mine["rendered"], RECORDS)

        outcome = await self.wait_for(MergeCompleted, MergeRejected, progress=merge_progress)
        if outcome["type"] == MergeRejected.routing_key:
            self.bar.end()
            print(f"merge rejected: {outcome['problems']}")
            return 1
        mailing_id = outcome["mailing_id"]
        self.bar("converting to PDF", RECORDS, RECORDS)
        self.bar.end()
        print(
            f"mailing {outcome['name']!r} is {outcome['status']}: {outcome['documents']} documents, "
            f"{outcome['failed']} failed"
        )

        dispatch_id = self.dispatch_id = str(uuid.uuid4())
        await self.publish(
            DispatchRequested(
                tenant_id=TENANT,
                correlation_id=self.correlation_id,
                dispatch_id=dispatch_id,
                mailing_id=mailing_id,
                subject="Premium notice {document_number} - {client_name}",
                body="Dear {client_name},\n\nPlease find attached your premium notice {document_number}.\n\n"
                "Customer service\n",
            )
        )

        async def dispatch_progress() -> None:
            response = await self.dispatch.get(f"/dispatches/{dispatch_id}")
            if response.status_code == 200:
                view = response.json()
                self.bar("sending e-mails", view["sent"] + view["failed"], view["total"] or RECORDS)

        completed = await self.wait_for(DispatchCompleted, progress=dispatch_progress)
        self.bar("sending e-mails", RECORDS, RECORDS)
        self.bar.end()
        regrouped = await self.wait_for(MailingRegrouped)
        self.completed, self.regrouped = completed, regrouped
        return await self._report(completed, regrouped)

    async def _report(self, completed: dict[str, Any], regrouped: dict[str, Any]) -> int:
        print(f"\nsent {completed['sent']} / not sent {completed['failed']}")
        reasons = Counter(_kind_of_failure(f["reason"]) for f in completed["failures"])
        for reason, count in reasons.most_common():
            print(f"  {count} × {reason}")
        out_dir = self.run_dir / "demo"
        out_dir.mkdir(parents=True, exist_ok=True)
        print("\nmailings:")
        for mailing_id in (regrouped["sent_mailing_id"], regrouped["not_sent_mailing_id"]):
            if mailing_id is None:
                continue
            mailing = (await self.merge.get(f"/mailings/{mailing_id}")).json()
            line = f"  {mailing['name']}: {mailing['documents']} documents"
            for part in mailing["parts"]:
                content = await self.merge.get(f"/mailings/{mailing_id}/parts/{part['number']}")
                suffix = f" part {part['number']}" if len(mailing["parts"]) > 1 else ""
                path = out_dir / f"{mailing['name']}{suffix}.pdf"
                path.write_bytes(content.content)
                line += f", print file: {path} ({part['pages']} pages)"
            print(line)
        mail_dir = self.run_dir / "mail"
        print(f"\ncaptured e-mails: {mail_dir} ({captured_since(mail_dir, self.started_ns)} .eml files from this run)")
        return 0


def captured_since(mail_dir: Path, started_ns: int) -> int:
    """E-mails the capture server stored since `started_ns`: the folder keeps those of earlier runs."""
    return sum(1 for path in mail_dir.glob("*.eml") if path.stat().st_mtime_ns >= started_ns)


def _kind_of_failure(reason: str) -> str:
    if reason.startswith("no address"):
        return "no address (none in the record, none in the directory)"
    if reason.startswith("550"):
        return "rejected by the server (550 mailbox unavailable)"
    return reason


def main() -> None:
    sys.exit(asyncio.run(Demo(StackConfig.from_env()).run()))


if __name__ == "__main__":
    main()
