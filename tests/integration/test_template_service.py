"""The template service against the real broker and database."""

from pathlib import Path

import aio_pika
import httpx
from publipost_template.app import build
from publipost_template.settings import TemplateSettings

SAMPLE = Path(__file__).parents[2] / "samples" / "letter.docx"


def client(service) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://template")


async def test_an_uploaded_template_is_stored_lists_its_fields_and_is_announced(make_settings, running, infra):
    service = build(make_settings(TemplateSettings))
    async with running(service):
        connection = await aio_pika.connect(infra.rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(service.bus.topology.events.name)
            listener = await channel.declare_queue(exclusive=True)
            await listener.bind(exchange, routing_key="template.registered")

            async with client(service) as http:
                response = await http.post(
                    "/templates",
                    headers={"X-Tenant-Id": "acme"},
                    data={"name": "Premium notice"},
                    files={"file": ("letter.docx", SAMPLE.read_bytes())},
                )
                assert response.status_code == 201, response.text
                template = response.json()
                assert {"name", "premium", "signatory", "customer_number"} <= set(template["fields"])

                listed = (await http.get("/templates", headers={"X-Tenant-Id": "acme"})).json()
                assert [t["id"] for t in listed] == [template["id"]]
                other_tenant = (await http.get("/templates", headers={"X-Tenant-Id": "other"})).json()
                assert other_tenant == []

                content = await http.get(f"/templates/{template['id']}/content", headers={"X-Tenant-Id": "acme"})
                assert content.content == SAMPLE.read_bytes()

            message = await listener.get(timeout=5)
            assert b'"template.registered"' in message.body
            assert template["id"].encode() in message.body


async def test_a_file_that_is_not_a_docx_is_refused_naming_the_field(make_settings, running):
    service = build(make_settings(TemplateSettings))
    async with running(service), client(service) as http:
        response = await http.post(
            "/templates",
            headers={"X-Tenant-Id": "acme"},
            data={"name": "Broken"},
            files={"file": ("notes.docx", b"plain text, not a zip")},
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "file"]
        assert "not a DOCX" in response.json()["detail"][0]["msg"]
        assert (await http.get("/templates", headers={"X-Tenant-Id": "acme"})).json() == []


async def test_readiness_tells_the_truth(make_settings, running):
    service = build(make_settings(TemplateSettings))
    async with running(service), client(service) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": True, "broker": True}
    down = build(make_settings(TemplateSettings, mongodb_url="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300"))
    async with client(down) as http:
        response = await http.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"] == {"database": False, "broker": False}
