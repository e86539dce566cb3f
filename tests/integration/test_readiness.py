"""Every service's health endpoints tell the truth: ready only while its broker and database answer."""

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from publipost_dispatch.app import build as build_dispatch
from publipost_dispatch.settings import DispatchSettings
from publipost_merge.app import build as build_merge
from publipost_merge.settings import MergeSettings
from publipost_recipient_directory.app import build as build_directory
from publipost_recipient_directory.settings import RecipientDirectorySettings
from publipost_render_pdf.app import build as build_render
from publipost_render_pdf.settings import RenderPdfSettings
from publipost_scheduler.app import build as build_scheduler
from publipost_scheduler.settings import SchedulerSettings
from publipost_template.app import build as build_template
from publipost_template.settings import TemplateSettings

from tests.support import TcpProxy, wait_until

SERVICES = {
    "template": (build_template, TemplateSettings),
    "recipient-directory": (build_directory, RecipientDirectorySettings),
    "merge": (build_merge, MergeSettings),
    "render-pdf": (build_render, RenderPdfSettings),
    "dispatch": (build_dispatch, DispatchSettings),
    "scheduler": (build_scheduler, SchedulerSettings),
}


def through(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{proxy.port}" if credentials else f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def host_port(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


@pytest.fixture
async def proxied(infra, make_settings):
    """Settings whose broker and database go through proxies the test can cut."""
    async with TcpProxy(host_port(infra.rabbitmq_url)) as broker, TcpProxy(host_port(infra.mongodb_url)) as database:

        def settings(settings_class):
            return make_settings(
                settings_class,
                rabbitmq_url=through(broker, infra.rabbitmq_url),
                # directConnection: a replica-set member would otherwise hand the client its real address.
                mongodb_url=through(database, infra.mongodb_url) + "?directConnection=true",
            )

        yield settings, broker, database


@pytest.mark.parametrize("name", SERVICES)
async def test_ready_only_while_broker_and_database_answer(name, proxied, running):
    build, settings_class = SERVICES[name]
    make_settings, broker, database = proxied
    service = await running(build(make_settings(settings_class)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://s") as http:

        async def checks() -> dict[str, bool]:
            response = await http.get("/readyz", timeout=20)
            assert response.status_code == (200 if all(response.json()["checks"].values()) else 503)
            return response.json()["checks"]

        assert (await http.get("/healthz")).status_code == 200
        assert all((await checks()).values())

        database.cut()
        await wait_until(lambda: _is(checks, "database", False), timeout=30)
        database.restore()
        await wait_until(lambda: _all_true(checks), timeout=30)

        broker.cut()
        await wait_until(lambda: _is(checks, "broker", False), timeout=30)
        assert (await http.get("/healthz")).status_code == 200  # alive, just not ready
        broker.restore()
        await wait_until(lambda: _all_true(checks), timeout=60)


async def _is(checks, name: str, value: bool) -> bool:
    return (await checks())[name] is value


async def _all_true(checks) -> bool:
    return all((await checks()).values())


async def test_a_service_stopped_while_its_broker_is_gone_still_stops_libreoffice(proxied):
    make_settings, broker, _ = proxied
    service = build_render(make_settings(RenderPdfSettings))
    await service.migrate()
    await service.start()
    soffice = service.components.converter.describe()[0]["soffice_pid"]
    broker.cut()

    await service.stop()

    assert not service.components.converter.describe()[0]["alive"]
    await wait_until(lambda: not Path(f"/proc/{soffice}").exists(), timeout=15)
