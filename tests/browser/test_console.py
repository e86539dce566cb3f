"""The web console in a real browser (Debian's chromium, headless, driven by Playwright) against the real
services, the development issuer and the SMTP capture: a person signs in on the issuer's form, watches a
mailing get made, downloads its print file, sends it by e-mail choosing the documents, then fixes the
addresses of the clients it could not reach and sends their documents again.

Screenshots of each screen go to .local/screenshots/ for review."""

import email
import email.policy
import io
from pathlib import Path

import pytest
from playwright.async_api import Page, expect
from pypdf import PdfReader

from tests.browser.conftest import WAIT_MS, chromium, laptop_page, request_mailing, shot, sign_in
from tests.support import sample_record, wait_until

pytestmark = pytest.mark.slow


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
    async with chromium() as browser:
        page = await laptop_page(browser)

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
        page = await laptop_page(browser, "fr-FR")
        await sign_in(page, stack, "User name", "Password", "Sign in")  # the issuer's own form is in English
        await expect(page.get_by_role("heading", name="Publipostages")).to_be_visible()
        await expect(page.get_by_text("Connecté : operator")).to_be_visible()
        await expect(page.get_by_text("Remplacé")).to_have_count(2)  # the first mailing, then its not-sent half
        await page.get_by_role("link", name="Premium notices (not sent by e-mail)", exact=True).click()
        await expect(page.get_by_role("heading", name="Fichier d'impression")).to_be_visible()
        await expect(page.get_by_label("État de l'envoi")).to_be_visible()
        await expect(page.get_by_text("2 documents, 0 en échec")).to_be_visible()
        await shot(page, "12-french")
