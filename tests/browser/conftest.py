"""The stack the web console's browser tests drive: the development issuer, the six services and the
console, as `make up` runs them, and the helpers each screen's test uses."""

import asyncio
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography.fernet import Fernet
from playwright.async_api import Browser, Page, async_playwright
from publipost_bus import Bus
from publipost_console.app import build as build_console
from publipost_console.settings import ConsoleSettings
from publipost_contracts import MergeRequested
from publipost_dispatch.app import build as build_dispatch
from publipost_dispatch.sealing import PasswordSeal
from publipost_dispatch.settings import DispatchSettings
from publipost_localstack import dev_issuer
from publipost_localstack.processes import Background, free_port, wait_for_port
from publipost_localstack.stack import SERVICES
from publipost_merge.app import build as build_merge
from publipost_merge.settings import MergeSettings
from publipost_recipient_directory.app import build as build_directory
from publipost_recipient_directory.settings import RecipientDirectorySettings
from publipost_render_pdf.app import build as build_render
from publipost_render_pdf.settings import RenderPdfSettings
from publipost_scheduler.app import build as build_scheduler
from publipost_scheduler.settings import SchedulerSettings
from publipost_settings import ServiceSettings
from publipost_template.app import build as build_template
from publipost_template.settings import TemplateSettings

from tests.credentials import SERVICE_SECRET

REPO = Path(__file__).parents[2]
SAMPLE = REPO / "samples" / "letter.docx"
SCREENSHOTS = REPO / ".local" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WAIT_MS = 180_000  # a mailing made by LibreOffice on a busy 2-core machine
TENANT = dev_issuer.DEV_TENANT


@pytest.fixture
def issuer(tmp_path):
    """The development issuer as `make up` runs it, its services' clients sharing the tests' secret."""
    directory = tmp_path / "issuer"
    dev_issuer.prepare(directory, SERVICES, service_secret=SERVICE_SECRET)
    port = free_port()
    process = Background(f"dev-issuer-{port}", tmp_path)
    command = [sys.executable, "-m", "publipost_localstack.dev_issuer", "serve", "--dir", str(directory)]
    process.start([*command, "--port", str(port)])
    wait_for_port("127.0.0.1", port, 30, "the development issuer")
    yield {"url": f"http://127.0.0.1:{port}", "dir": directory}
    process.stop()


async def serve_console(app) -> tuple[str, uvicorn.Server, asyncio.Task]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, task


@pytest.fixture
async def stack(issuer, make_settings, running, serve_http, mailbox):
    """template, merge, render-pdf, dispatch, directory and the console, trusting the development issuer."""

    def settings(cls, **overrides):
        trust = {
            "auth_issuer_url": issuer["url"],
            "auth_jwks_url": None,
            "auth_token_url": None,
            "auth_dev_issuer": True,
        }
        return make_settings(cls, **trust, **overrides)

    template = await running(build_template(settings(TemplateSettings)))
    template_url = await serve_http(template)
    directory = await running(build_directory(settings(RecipientDirectorySettings)))
    directory_url = await serve_http(directory)
    merge_settings = settings(
        MergeSettings, template_url=template_url, directory_url=directory_url, render_chunk_size=4
    )
    merge = await running(build_merge(merge_settings))
    merge_url = await serve_http(merge)
    render_url = await serve_http(await running(build_render(settings(RenderPdfSettings))))
    dispatch = await running(
        build_dispatch(
            settings(
                DispatchSettings,
                merge_url=merge_url,
                template_url=template_url,
                smtp_host=mailbox.host,
                smtp_port=mailbox.port,
                account_key=PasswordSeal.new_key(),
            )
        )
    )
    dispatch_url = await serve_http(dispatch)
    scheduler = await running(
        build_scheduler(
            settings(
                SchedulerSettings,
                directory_url=directory_url,
                merge_url=merge_url,
                template_url=template_url,
                dispatch_url=dispatch_url,
            )
        )
    )
    scheduler_url = await serve_http(scheduler)
    console_settings = settings(
        ConsoleSettings,
        template_url=template_url,
        merge_url=merge_url,
        dispatch_url=dispatch_url,
        directory_url=directory_url,
        scheduler_url=scheduler_url,
        render_url=render_url,
        session_key=Fernet.generate_key().decode(),
        poll_interval_s=0.5,
    )
    console_url, server, task = await serve_console(build_console(console_settings))
    system = Bus(settings(ServiceSettings, service_name="crm"), publishes=[MergeRequested])
    await system.start()
    admin = {"Authorization": f"Bearer {dev_issuer.user_token(issuer['url'], issuer['dir'], 'admin')}"}
    async with httpx.AsyncClient(base_url=template_url, headers=admin) as http:
        uploaded = await http.post(
            "/templates",
            data={"name": "Notice", "custom_fields": "signatory"},
            files={"file": ("l.docx", SAMPLE.read_bytes())},
        )
        email_template = await http.post(
            "/email-templates",
            json={
                "name": "Premium notice",
                "subject": "Your notice {document_number}",
                "body_text": "Hello,\nhere it is.\n",
            },
        )
        assert uploaded.status_code == 201 and email_template.status_code == 201
    yield {
        "console": console_url,
        "system": system,
        "template_id": uploaded.json()["id"],
        "mailbox": mailbox,
        "password": dev_issuer.load_registry(issuer["dir"])["users"]["operator"]["password"],
    }
    await system.stop()
    server.should_exit = True
    await task


LAPTOP = {"width": 1366, "height": 768}


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's chromium, headless, driven by Playwright (whose own browser download is not needed)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def laptop_page(browser: Browser, locale: str = "en-GB") -> Page:
    """A page of a new session, as a person's laptop shows it, in the browser language `locale`."""
    context = await browser.new_context(locale=locale, viewport=LAPTOP, accept_downloads=True)
    page = await context.new_page()
    page.set_default_timeout(30_000)
    return page


async def request_mailing(stack, name: str, records: list[dict]) -> None:
    """What an internal system does: publish merge.requested."""
    await stack["system"].publish(
        MergeRequested(
            tenant_id=TENANT,
            correlation_id=str(uuid.uuid4()),
            request_id=str(uuid.uuid4()),
            template_id=stack["template_id"],
            name=name,
            records=records,
            custom_fields={"signatory": "Jane Manager"},
            output="pdf",
        )
    )


async def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def sign_in(page: Page, stack, user_label: str, password_label: str, button: str) -> None:
    await page.goto(f"{stack['console']}/mailings")
    await page.get_by_label(user_label).fill("operator")
    await page.get_by_label(password_label).fill(stack["password"])
    await page.get_by_role("button", name=button).click()
