"""Schema changes are an explicit step (`python -m publipost migrate`): a service does not make indexes or
upgrade data as it starts; it waits, not ready, until the store is migrated to its version, and a
migration runs each upgrade once and can run again."""

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime

import httpx
from publipost_recipient_directory.app import build as build_directory
from publipost_recipient_directory.settings import RecipientDirectorySettings
from publipost_storage import Storage
from publipost_template.app import build as build_template
from publipost_template.settings import TemplateSettings

from tests.credentials import credentials

ACME = credentials("acme")


async def test_a_service_waits_not_ready_until_its_schema_is_migrated_then_works(make_settings, running):
    service = build_template(make_settings(TemplateSettings))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://t")

    starting = asyncio.create_task(service._schema_migrated(poll_s=0.1))
    await asyncio.sleep(1)
    ready = await http.get("/readyz")
    assert not starting.done()
    assert ready.status_code == 503 and ready.json()["checks"]["schema"] is False
    assert await service.storage.db["templates"].index_information() == {}  # nothing made by starting

    migrated = await service.migrate()
    await asyncio.wait_for(starting, 10)
    await asyncio.sleep(1.1)  # the readiness answer is cached a second

    assert (migrated.before, migrated.after) == (0, service.schema_version)
    assert (await http.get("/readyz")).json()["checks"]["schema"] is True
    assert len(await service.storage.db["templates"].index_information()) > 1
    await http.aclose()
    await service.storage.close()


async def test_a_migration_runs_each_upgrade_once_and_runs_again_changing_nothing(make_settings, running):
    settings = make_settings(TemplateSettings)
    storage = Storage.for_service(settings)
    created = datetime(2025, 3, 1, tzinfo=UTC)
    await storage.db["templates"].insert_one(  # a template stored before versions existed
        {
            "_id": "t-first",
            "tenant_id": "acme",
            "name": "Old letter",
            "blob_id": "674b1f2e9c0d4a5b6c7d8e9f",
            "fields": ["name", "city"],
            "created_at": created,
        }
    )
    await storage.close()
    env = {**os.environ, "MONGODB_URL": settings.mongodb_url, "PUBLIPOST_NAMESPACE": settings.namespace}
    command = [sys.executable, "-m", "publipost", "migrate", "--service", "template"]

    def migrate() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=120)

    first = await asyncio.to_thread(migrate)
    second = await asyncio.to_thread(migrate)

    assert first.stdout.strip() == (
        "template             schema 0 → 2, ran templates stored before versions get their version 1"
    )
    assert second.stdout.strip() == "template             schema 2 → 2"
    service = await running(build_template(settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://t") as http:
        template = (await http.get("/templates/t-first", headers=ACME)).json()
    assert (template["name"], template["version"], template["fields"]) == ("Old letter", 1, ["city", "name"])


async def test_the_directory_s_migration_makes_the_old_default_pdf_a_format_stated_by_nobody(make_settings, running):
    """Before e-invoices every recipient had the format pdf unless it asked for DOCX. Read as a wish for the
    plain PDF, it sent a client whose address was just fixed its invoice without its Factur-X."""
    settings = make_settings(RecipientDirectorySettings)
    storage = Storage.for_service(settings)
    stored_at = datetime(2026, 6, 1, tzinfo=UTC)
    old = {"tenant_id": "acme", "document_type": "invoice", "email": "a@example.test"}
    old |= {"created_at": stored_at, "updated_at": stored_at}
    await storage.db["recipients"].insert_many(
        [{**old, "customer_number": "C1", "format": "pdf"}, {**old, "customer_number": "C2", "format": "docx"}]
    )
    await storage.close()
    env = {**os.environ, "MONGODB_URL": settings.mongodb_url, "PUBLIPOST_NAMESPACE": settings.namespace}
    command = [sys.executable, "-m", "publipost", "migrate", "--service", "recipient-directory"]

    migrated = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, check=True)

    assert "ran a recipient's default format (pdf) states none" in migrated.stdout
    service = await running(build_directory(settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://d") as http:
        formats = [(await http.get(f"/recipients/{c}", headers=ACME)).json()["format"] for c in ("C1", "C2")]
    assert formats == [None, "docx"]
