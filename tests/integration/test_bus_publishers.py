"""An integrating system on the bus, as its own RabbitMQ user: it publishes for its tenants and no other.

The test makes its own RabbitMQ user, with the permissions the README gives an integrating system
(publipost_localstack.broker_users), through rabbitmqctl as root or the management API; without either it
is skipped.
"""

import secrets
import uuid
from pathlib import Path

import aio_pika
import httpx
import pytest
from aiormq.exceptions import ChannelAccessRefused, ChannelPreconditionFailed
from publipost_contracts import MergeCompleted, MergeRejected, MergeRequested
from publipost_localstack import broker_users
from publipost_merge.app import build as build_merge
from publipost_merge.settings import MergeSettings
from publipost_render_pdf.app import build as build_render
from publipost_render_pdf.settings import RenderPdfSettings
from publipost_template.app import build as build_template
from publipost_template.settings import TemplateSettings

from tests.support import EventTap, sample_record, wait_until

SAMPLE = Path(__file__).parents[2] / "samples" / "letter.docx"


@pytest.fixture
def crm(infra, namespace):
    """An integrating system's RabbitMQ user, `<namespace>-crm`: (its name, its amqp URL)."""
    admin = broker_users.admin_for(infra.rabbitmq_url)
    if admin is None:
        pytest.skip("no way to make RabbitMQ users here (rabbitmqctl as root, or the management API)")
    user, password = f"{namespace}-crm", secrets.token_urlsafe(16)
    permissions = broker_users.system_permissions(namespace, user)
    admin.apply(broker_users.definitions(broker_users.vhost_of(infra.rabbitmq_url), {user: (password, permissions)}))
    yield user, broker_users.url_as(infra.rabbitmq_url, user, password)
    admin.delete_users([user])


@pytest.fixture
async def merge(make_settings, running, serve_http, crm):
    """template and merge, merge trusting the crm user for tenant acme only; the sample template of acme."""
    template = await running(build_template(make_settings(TemplateSettings, auth_required=False)))
    template_url = await serve_http(template)
    async with httpx.AsyncClient(base_url=template_url, headers={"X-Tenant-Id": "acme"}) as http:
        uploaded = await http.post(
            "/templates",
            data={"name": "Notice", "custom_fields": "signatory"},
            files={"file": ("letter.docx", SAMPLE.read_bytes())},
        )
    assert uploaded.status_code == 201, uploaded.text
    user, _ = crm
    settings = make_settings(MergeSettings, template_url=template_url, bus_publishers={user: ["acme"]})
    service = await running(build_merge(settings))
    await running(build_render(make_settings(RenderPdfSettings)))  # a DOCX mailing's page counts
    service.template_id = uploaded.json()["id"]
    return service


def merge_request(tenant_id: str, template_id: str) -> MergeRequested:
    return MergeRequested(
        tenant_id=tenant_id,
        correlation_id=str(uuid.uuid4()),
        request_id=str(uuid.uuid4()),
        template_id=template_id,
        records=[sample_record(1)],
        custom_fields={"signatory": "Jane Manager"},
        output="docx",
    )


async def publish(exchange: aio_pika.abc.AbstractExchange, event: MergeRequested, user_id: str | None) -> None:
    message = aio_pika.Message(
        event.model_dump_json().encode(), message_id=str(event.event_id), content_type="application/json", user_id=user_id
    )
    await exchange.publish(message, routing_key=event.routing_key)


async def dead_letters(infra, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """The messages of `queue`'s dead-letter queue, left in it."""
    connection = await aio_pika.connect(infra.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        dlq = await channel.declare_queue(f"{queue}.dlq", passive=True)
        messages = []
        while (message := await dlq.get(no_ack=False, fail=False)) is not None:
            messages.append(message)
        await channel.close()  # unacknowledged: they stay in the queue
        return messages


async def test_a_system_publishing_for_another_tenant_is_dead_lettered_with_the_reason_and_nothing_is_stored(
    infra, namespace, crm, merge
):
    user, url = crm
    for_globex = merge_request("globex", merge.template_id)
    unnamed = merge_request("acme", merge.template_id)
    for_acme = merge_request("acme", merge.template_id)
    async with EventTap(infra.rabbitmq_url, namespace, MergeCompleted, MergeRejected) as tap:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(f"{namespace}.events", ensure=False)
            await publish(exchange, for_globex, user)
            await publish(exchange, unnamed, None)
            await publish(exchange, for_acme, user)

        # Its own tenant's request is handled: the mailing is made.
        completed = await tap.next(MergeCompleted, lambda e: e.request_id == for_acme.request_id)
        assert (completed.tenant_id, completed.documents) == ("acme", 1)

        # The others are dead-lettered, saying why, before the handler ran.
        queue = f"{namespace}.merge.merge.requested"
        dead = await wait_until(lambda: _two_or_none(dead_letters(infra, queue)), timeout=10)
        reasons = {m.message_id: m.headers["x-publipost-dead-letter-reason"] for m in dead}
        assert reasons == {
            str(for_globex.event_id): f"publisher refused: RabbitMQ user {user!r} may not publish for tenant 'globex' "
            "(its tenants: 'acme')",
            str(unnamed.event_id): "publisher refused: the message does not name its publisher (no user_id property): "
            "publish as your own RabbitMQ user with user_id set to it",
        }
        assert {m.message_id: m.headers.get("x-publipost-publisher") for m in dead} == {
            str(for_globex.event_id): user,
            str(unnamed.event_id): None,
        }
        assert not [e for e in tap.received if e.request_id in (for_globex.request_id, unnamed.request_id)]

    db = merge.storage.db
    assert await db["mailings"].count_documents({"tenant_id": "globex"}) == 0
    assert await db["mailings"].count_documents({"tenant_id": "acme"}) == 1
    handled = {doc["event_id"] async for doc in db["processed_messages"].find({})}
    # Besides render-pdf's answer (the page count of the DOCX mailing), only the request of its own tenant.
    assert str(for_acme.event_id) in handled
    assert not handled & {str(for_globex.event_id), str(unnamed.event_id)}


async def _two_or_none(listing) -> list | None:
    messages = await listing
    return messages if len(messages) >= 2 else None


async def test_the_broker_refuses_a_system_naming_another_user_or_publishing_what_it_may_not(
    infra, namespace, crm, merge
):
    user, url = crm
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(f"{namespace}.events", ensure=False)
        with pytest.raises(ChannelPreconditionFailed, match="user_id property set to 'guest' but authenticated user was"):
            await publish(exchange, merge_request("globex", merge.template_id), "guest")

        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(f"{namespace}.events", ensure=False)
        rendered = aio_pika.Message(b"{}", user_id=user)
        with pytest.raises(ChannelAccessRefused, match="documents.rendered"):
            await exchange.publish(rendered, routing_key="documents.rendered")  # only merge/dispatch.requested
