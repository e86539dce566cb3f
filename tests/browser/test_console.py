"""The web console in a real browser (Debian's chromium, headless, driven by Playwright) against the real
services, the development issuer and the SMTP capture: a person signs in on the issuer's form, watches a
mailing get made, downloads its print file, sends it by e-mail choosing the documents, then fixes the
addresses of the clients it could not reach and sends their documents again.

Screenshots of each screen go to .local/screenshots/ for review."""

import asyncio
import email
import email.policy
import io
import shutil
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography.fernet import Fernet
from playwright.async_api import Page, async_playwright, expect
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
from publipost_settings import ServiceSettings
from publipost_template.app import build as build_template
from publipost_template.settings import TemplateSettings
from pypdf import PdfReader

from tests.credentials import SERVICE_SECRET
from tests.support import sample_record, wait_until

pytestmark = pytest.mark.slow

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
    merge = await running(build_merge(settings(MergeSettings, template_url=template_url, render_chunk_size=4)))
    merge_url = await serve_http(merge)
    await running(build_render(settings(RenderPdfSettings)))
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
    directory = await running(build_directory(settings(RecipientDirectorySettings)))
    directory_url = await serve_http(directory)
    console_settings = settings(
        ConsoleSettings,
        template_url=template_url,
        merge_url=merge_url,
        dispatch_url=dispatch_url,
        directory_url=directory_url,
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


def recipients(stack) -> list[str]:
    messages = [email.message_from_bytes(raw, policy=email.policy.default) for raw in stack["mailbox"].messages()]
    return sorted(str(m["To"]) for m in messages if m["Subject"].startswith("Your notice"))


async def send_whole_or_some(page: Page, untick: list[str], *, will_send: str) -> None:
    """The send form, then its confirmation; the documents named in `untick` are left out."""
    await page.get_by_label("Sending account").select_option(label="The platform's account")
    await page.get_by_label("E-mail template").select_option(label="Premium notice")
    await page.get_by_role("button", name="Check before sending").click()
    await expect(page.get_by_text(will_send)).to_be_visible()
    for document in untick:
        await page.get_by_label(document).uncheck()


async def test_a_person_signs_in_watches_a_mailing_downloads_sends_fixes_and_resends(stack):
    records = [
        sample_record(1, email="one@example.test"),
        sample_record(2, email="two@example.test"),
        sample_record(3, email="three@reject.test"),  # the server refuses it
        sample_record(4, email=None),  # no address anywhere
    ]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = await browser.new_context(
            locale="en-GB", viewport={"width": 1366, "height": 768}, accept_downloads=True
        )
        page = await context.new_page()
        page.set_default_timeout(30_000)

        # Sign in through the issuer's form, then land on the mailings.
        await page.goto(f"{stack['console']}/mailings")
        await expect(page.get_by_label("User name")).to_be_visible()
        await shot(page, "01-sign-in")
        await page.get_by_label("User name").fill("operator")
        await page.get_by_label("Password").fill(stack["password"])
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Mailings")).to_be_visible()
        await expect(page.get_by_text("Signed in as operator")).to_be_visible()
        await expect(page.get_by_text("No mailing yet.")).to_be_visible()

        # A mailing arrives; its status turns from in progress to ready on the page, without a reload.
        await request_mailing(stack, "Premium notices", records)
        row = page.locator("tr", has=page.get_by_role("link", name="Premium notices"))

        async def listed() -> bool:  # the event is on its way: the list shows the mailing once merge made it
            await page.reload()
            return await row.count() == 1

        await wait_until(listed, timeout=60, interval=0.5)
        await shot(page, "02-mailings-in-progress")
        await expect(row.get_by_text("Ready")).to_be_visible(timeout=WAIT_MS)
        await expect(row.locator("td").nth(3)).to_have_text("4")
        await shot(page, "03-mailings-ready")

        # Its page: documents, and the print file downloaded by clicking its name.
        await row.get_by_role("link", name="Premium notices").click()
        await expect(page.get_by_role("heading", name="Mailing Premium notices")).to_be_visible()
        await expect(page.get_by_text("4 documents, 0 failed")).to_be_visible()
        for number in ("INV-0001", "INV-0002", "INV-0003", "INV-0004"):
            await expect(page.get_by_role("link", name=number)).to_be_visible()
        part_link = page.get_by_role("link", name="Part 1: 4 documents")
        label = await part_link.inner_text()
        pages = int(label.rsplit(", ", 1)[1].split()[0])
        async with page.expect_download() as downloading:
            await part_link.click()
        download = await downloading.value
        pdf = Path(await download.path()).read_bytes()
        assert pdf.startswith(b"%PDF") and len(PdfReader(io.BytesIO(pdf)).pages) == pages >= 4
        async with page.expect_download() as downloading:
            await page.get_by_role("link", name="INV-0002").click()
        one = Path(await (await downloading.value).path()).read_bytes()
        assert len(PdfReader(io.BytesIO(one)).pages) == pages // 4
        await shot(page, "04-mailing")

        # Send by e-mail, leaving the second client's document out.
        await page.get_by_role("link", name="Send by e-mail").click()
        await expect(page.get_by_role("heading", name="Send Premium notices by e-mail")).to_be_visible()
        await shot(page, "05-send-form")
        await send_whole_or_some(
            page, ["INV-0002 · Client Number2 · two@example.test"], will_send="3 of 4 documents will be sent."
        )
        await expect(page.get_by_text("INV-0004: no address")).to_be_visible()
        await shot(page, "06-send-confirmation")
        await page.get_by_role("button", name="Send", exact=True).click()
        await expect(page.get_by_text("The send is over: 1 sent, 2 not sent.")).to_be_visible(timeout=WAIT_MS)
        await shot(page, "07-dispatch-done")
        assert recipients(stack) == ["one@example.test"]  # not the unticked one

        # Then the whole mailing: it is regrouped into a sent and a not-sent mailing.
        await page.goto(f"{stack['console']}/mailings")
        await page.get_by_role("link", name="Premium notices", exact=True).click()
        await page.get_by_role("link", name="Send by e-mail").click()
        await send_whole_or_some(page, [], will_send="3 of 4 documents will be sent.")
        await page.get_by_role("button", name="Send", exact=True).click()
        await expect(page.get_by_text("The send is over: 2 sent, 2 not sent.")).to_be_visible(timeout=WAIT_MS)
        await page.get_by_role("link", name="See the mailings").click()
        await expect(page.get_by_role("link", name="Premium notices (sent by e-mail)")).to_be_visible()
        await shot(page, "08-mailings-regrouped")

        # The not-sent mailing: fix both clients' addresses in the directory, then re-send.
        await page.get_by_role("link", name="Premium notices (not sent by e-mail)", exact=True).click()
        await expect(page.get_by_text("These documents were not sent.")).to_be_visible()
        await shot(page, "09-not-sent")
        for customer, address in (("C0003", "three@example.test"), ("C0004", "four@example.test")):
            await page.get_by_role("link", name=f"Fix the address of {customer}").click()
            await page.get_by_label("E-mail address").fill(address)
            await page.get_by_role("button", name="Save the address").click()
            await expect(page.get_by_text(f"The address of {customer} is saved.")).to_be_visible()
            if customer == "C0004":
                await shot(page, "10-fix-address")
            await page.get_by_role("link", name="Back to the mailing").click()
        await page.get_by_role("link", name="Re-send").click()
        await send_whole_or_some(page, [], will_send="2 of 2 documents will be sent.")
        await page.get_by_role("button", name="Send", exact=True).click()
        await expect(page.get_by_text("The send is over: 2 sent, 0 not sent.")).to_be_visible(timeout=WAIT_MS)
        await shot(page, "11-resent")
        await wait_until(lambda: "four@example.test" in recipients(stack), timeout=30)
        assert recipients(stack) == [
            "four@example.test",
            "one@example.test",
            "one@example.test",
            "three@example.test",
            "two@example.test",
        ]

        # The same console in French, for a browser that asks for it.
        french = await browser.new_context(locale="fr-FR", viewport={"width": 1366, "height": 768})
        page = await french.new_page()
        await sign_in(page, stack, "User name", "Password", "Sign in")  # the issuer's own form is in English
        await expect(page.get_by_role("heading", name="Publipostages")).to_be_visible()
        await expect(page.get_by_text("Connecté : operator")).to_be_visible()
        await expect(page.get_by_text("Remplacé")).to_have_count(2)  # the first mailing, then its not-sent half
        await page.get_by_role("link", name="Premium notices (not sent by e-mail)", exact=True).click()
        await expect(page.get_by_role("heading", name="Fichier d'impression")).to_be_visible()
        await expect(page.get_by_label("État de l'envoi")).to_be_visible()
        await expect(page.get_by_text("2 documents, 0 en échec")).to_be_visible()
        await shot(page, "12-french")
        await browser.close()
