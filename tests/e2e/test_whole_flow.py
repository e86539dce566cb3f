"""The whole product as a user runs it: the local stack's processes, real RabbitMQ, database,
LibreOffice and SMTP capture, driven by the demo (an internal system on the bus)."""

import asyncio
import email
import email.policy
import io
import os
import signal
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from publipost_localstack.demo import NO_ADDRESS, RECORDS, REJECTED, Demo, credentials, records
from publipost_localstack.processes import free_port, free_port_base
from publipost_localstack.stack import SERVICES, Stack, StackConfig
from pypdf import PdfReader

from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
async def stack(infra, tmp_path_factory):
    config = StackConfig(
        run_dir=tmp_path_factory.mktemp("stack"),
        namespace="e2e" + uuid.uuid4().hex[:8],
        rabbitmq_url=infra.rabbitmq_url,
        mongodb_url=infra.mongodb_url,
        smtp_port=free_port(),
        http_port_base=free_port_base(len(SERVICES)),
    )
    stack = Stack(config)
    try:
        await asyncio.to_thread(stack.up)
        yield stack
    finally:
        await asyncio.to_thread(stack.down)
        await stack.delete_queues()


@pytest.fixture
def mail_dir(stack) -> Path:
    """The capture server's folder, emptied before each test."""
    for message in stack.config.mail_dir.glob("*.eml"):
        message.unlink()
    return stack.config.mail_dir


def read_mail(mail_dir: Path) -> list[tuple[int, email.message.EmailMessage]]:
    """(received at, in ns since the epoch; message) for each captured e-mail."""
    return [
        (int(path.name.split("-")[0]), email.message_from_bytes(path.read_bytes(), policy=email.policy.default))
        for path in sorted(mail_dir.glob("*.eml"))
    ]


async def deliveries(stack: Stack, dispatch_id: str) -> list[dict]:
    items, after = [], None
    async with httpx.AsyncClient(base_url=stack.config.url("dispatch"), headers=credentials(stack.config)) as http:
        while True:
            params = {"limit": 100, **({"after": after} if after is not None else {})}
            page = (await http.get(f"/dispatches/{dispatch_id}/deliveries", params=params)).json()
            items += page["items"]
            if (after := page["next_after"]) is None:
                return items


async def test_a_mailing_goes_from_merge_request_to_mailbox_and_is_regrouped(stack, mail_dir):
    demo = Demo(stack.config)
    assert await demo.run() == 0

    assert (demo.completed["sent"], demo.completed["failed"]) == (RECORDS - 8, 8)
    reasons = Counter(f["reason"].split(":")[0] for f in demo.completed["failures"])
    assert reasons["no address"] == len(NO_ADDRESS)
    assert sum(n for reason, n in reasons.items() if reason.startswith("550")) == len(REJECTED)
    assert (demo.regrouped["sent"], demo.regrouped["not_sent"]) == (RECORDS - 8, 8)

    mail = read_mail(mail_dir)
    assert len(mail) == RECORDS - 8
    by_number = {r["document_number"]: r for r in records()}
    for _, message in mail:
        (attachment,) = message.iter_attachments()
        record = by_number[attachment.get_filename().removesuffix(".pdf")]
        text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(attachment.get_content())).pages)
        for field in ("name", "address", "contract", "document_number"):
            assert record[field] in text, (record["document_number"], field)
        assert message["Subject"] == f"Premium notice {record['document_number']} - {record['name']}"
        assert message["To"] == (record["email"] or f"billing{int(record['customer_number'][1:])}@example.test")

    async with httpx.AsyncClient(base_url=stack.config.url("merge"), headers=credentials(stack.config)) as http:
        sent = (await http.get(f"/mailings/{demo.regrouped['sent_mailing_id']}")).json()
        not_sent = (await http.get(f"/mailings/{demo.regrouped['not_sent_mailing_id']}")).json()
        combined = await http.get(f"/mailings/{demo.regrouped['not_sent_mailing_id']}/parts/1")
    assert sent["name"].endswith("(sent by e-mail)") and sent["documents"] == RECORDS - 8
    assert not_sent["name"].endswith("(not sent by e-mail)") and not_sent["documents"] == 8
    assert sent["converted_by"] == {"libreoffice": RECORDS - 8}  # the mailing says what made its PDFs
    assert len(PdfReader(io.BytesIO(combined.content)).pages) >= 8


async def test_killing_dispatch_mid_run_loses_nothing_and_sends_nothing_recorded_twice(stack, mail_dir):
    demo = Demo(stack.config)
    run = asyncio.create_task(demo.run())
    await wait_until(lambda: len(list(mail_dir.glob("*.eml"))) >= 40, timeout=240, interval=0.02)
    os.killpg(stack.process("dispatch").pid(), signal.SIGKILL)
    killed_at = len(list(mail_dir.glob("*.eml")))
    await wait_until(lambda: stack.process("dispatch").pid() is None, timeout=10)
    await asyncio.to_thread(stack.start_service, "dispatch")
    await asyncio.to_thread(stack.wait_ready, "dispatch", 120)

    assert await asyncio.wait_for(run, timeout=300) == 0
    assert killed_at < RECORDS - 8, "the kill came after the run: nothing was tested"

    outcomes = await deliveries(stack, demo.dispatch_id)
    assert len(outcomes) == RECORDS
    assert Counter(d["state"] for d in outcomes) == {"sent": RECORDS - 8, "failed": 8}
    assert (demo.completed["sent"], demo.completed["failed"]) == (RECORDS - 8, 8)

    received: dict[str, list[int]] = {}
    duplicates = 0
    for at, message in read_mail(mail_dir):
        received.setdefault(message["Message-ID"], []).append(at)
    for delivery in outcomes:
        if delivery["state"] != "sent":
            continue
        copies = received.get(delivery["message_id"], [])
        assert copies, f"{delivery['document_number']} recorded as sent but never received"
        # The database keeps milliseconds: compare at that precision.
        recorded_ms = round(datetime.fromisoformat(delivery["finished_at"]).replace(tzinfo=UTC).timestamp() * 1000)
        # A copy after the record would be a document sent again; copies before it are the crash window.
        assert all(at // 1_000_000 <= recorded_ms for at in copies), (delivery["document_number"], copies)
        duplicates += len(copies) - 1
    print(f"killed after {killed_at} e-mails; {duplicates} sent twice in the window before their record")
