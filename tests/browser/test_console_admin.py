"""The console's history, campaign and settings screens in a real browser (Debian's chromium, headless) against
the real services, the development issuer and the SMTP capture: an admin adds a sending account and tests
its connection, sends a mailing and finds the send that failed in the history with its error, makes,
changes, pauses, resumes and deletes a campaign; a viewer and an operator see no settings.

Screenshots of each screen go to .local/screenshots/admin-*.png for review."""

import re

import pytest
from playwright.async_api import Page, expect
from publipost_localstack import dev_issuer

from tests.browser.conftest import WAIT_MS, chromium, laptop_page, request_mailing, shot
from tests.support import sample_record, wait_until

pytestmark = pytest.mark.slow


async def sign_in_as(page: Page, stack, issuer, user: str) -> None:
    password = dev_issuer.load_registry(issuer["dir"])["users"][user]["password"]
    await page.goto(f"{stack['console']}/mailings")
    await page.get_by_label("User name").fill(user)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_text(f"Signed in as {user}")).to_be_visible()


async def test_an_admin_sets_up_an_account_finds_a_failed_send_and_runs_a_campaign(stack, issuer):
    records = [sample_record(1, email="one@example.test"), sample_record(2, email="two@reject.test")]
    async with chromium() as browser:
        page = await laptop_page(browser)
        await sign_in_as(page, stack, issuer, "admin")
        await request_mailing(stack, "Premium notices", records)  # made while the admin sets up

        # Settings: a sending account through the SMTP capture, its connection tested, then renamed.
        await page.get_by_role("link", name="Settings").click()
        await expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
        await page.get_by_role("link", name="Add a sending account").click()
        await page.get_by_label("Name", exact=True).fill("Capture")
        await page.get_by_label("SMTP server").fill(stack["mailbox"].host)
        await page.get_by_label("Port", exact=True).fill(str(stack["mailbox"].port))
        await page.get_by_label("Encryption").select_option(label="None (a server on this machine only)")
        await page.get_by_label("From address").fill("office@example.test")
        await shot(page, "admin-account-form")
        await page.get_by_role("button", name="Save the account").click()
        await expect(page.get_by_text("The sending account is saved.")).to_be_visible()
        await page.get_by_role("button", name="Test the connection Capture").click()
        await expect(page.get_by_text("Capture: connected and logged in.")).to_be_visible()
        await shot(page, "admin-settings")
        await page.get_by_role("link", name="Capture", exact=True).click()
        await page.get_by_label("Name", exact=True).fill("Capture desk")
        await page.get_by_role("button", name="Save the account").click()
        await expect(page.get_by_role("link", name="Capture desk", exact=True)).to_be_visible()
        await expect(page.get_by_role("columnheader", name="Roles").first).to_be_visible()
        await expect(page.get_by_role("cell", name="admin", exact=True).first).to_be_visible()  # users and roles
        await page.get_by_label("Who uses the new key").fill("CRM")
        await page.get_by_label("integrator").check()
        await page.get_by_role("button", name="Make an API key").click()
        await expect(page.get_by_text("The API key CRM is made.")).to_be_visible()
        assert (await page.get_by_label("Copy it now; it is shown this once:").input_value()).strip()
        page.once("dialog", lambda dialog: dialog.accept())
        await page.get_by_role("button", name="Revoke CRM").click()
        await expect(page.get_by_text("The API key is revoked.")).to_be_visible()
        await expect(page.get_by_role("cell", name="Revoked")).to_be_visible()
        await page.get_by_label("Yearly quota of LibreOffice conversions").fill("1000")
        await page.get_by_role("button", name="Save the conversion settings").click()
        await expect(page.get_by_text("The conversion settings are saved.")).to_be_visible()
        await expect(page.get_by_text(re.compile(r"Yearly quota: 1000, \d+ left\."))).to_be_visible()

        # The mailing, once ready, sent through the new account: one document the server refuses.
        await page.get_by_role("link", name="Mailings").click()
        row = page.locator("tr", has=page.get_by_role("link", name="Premium notices"))

        async def listed() -> bool:
            await page.reload()
            return await row.count() == 1

        await wait_until(listed, timeout=60, interval=0.5)
        await expect(row.get_by_text("Ready")).to_be_visible(timeout=WAIT_MS)

        # A campaign of the mailing: made weekly, changed to monthly, paused, resumed, deleted.
        await page.get_by_role("link", name="Campaigns").click()
        await expect(page.get_by_text("No campaign yet.")).to_be_visible()
        await page.get_by_role("link", name="New campaign").click()
        await page.get_by_label("Name", exact=True).fill("Premium reminders")
        await page.get_by_label("Mailing to send").select_option(label="Premium notices")
        await page.get_by_label("Repeats").select_option(label="Every week")
        await page.get_by_label("Day of the week (every week)").select_option(label="Monday")
        await page.get_by_label("Time (every week or month)").fill("09:00")
        await page.get_by_label("Sending account").select_option(label="Capture desk (office@example.test)")
        await page.get_by_label("E-mail template").select_option(label="Premium notice")
        await shot(page, "admin-campaign-form")
        await page.get_by_role("button", name="Save the campaign").click()
        await expect(page.get_by_text("The campaign is saved.")).to_be_visible()
        occurrences = page.locator("ul.occurrences li")
        await expect(occurrences).to_have_count(5)
        await expect(occurrences.first).to_contain_text("09:00")
        await page.get_by_label("Repeats").select_option(label="Every month")
        await page.get_by_label("Day of the month (every month)").fill("5")
        await page.get_by_label("Time (every week or month)").fill("10:30")
        await page.get_by_role("button", name="Save the campaign").click()
        await expect(page.get_by_text("The campaign is saved.")).to_be_visible()
        for occurrence in await occurrences.all_inner_texts():
            assert occurrence.endswith("-05 10:30"), occurrence
        await shot(page, "admin-campaign")
        await page.get_by_role("link", name="Back to the campaigns").click()
        campaign = page.locator("tr", has=page.get_by_role("link", name="Premium reminders"))
        await expect(campaign.get_by_text("Every month on day 5 at 10:30 (Europe/Paris)")).to_be_visible()
        await shot(page, "admin-campaigns")
        await campaign.get_by_role("button", name="Pause Premium reminders").click()
        await expect(campaign.get_by_text("Paused")).to_be_visible()
        await expect(campaign.get_by_text("None to come")).to_be_visible()
        await campaign.get_by_role("button", name="Resume Premium reminders").click()
        await expect(campaign.get_by_text("Active")).to_be_visible()
        await expect(campaign.locator("ul.occurrences li")).to_have_count(5)
        page.once("dialog", lambda dialog: dialog.accept())
        await campaign.get_by_role("button", name="Delete Premium reminders").click()
        await expect(page.get_by_text("No campaign yet.")).to_be_visible()

        # Send the mailing, then find its failed send in the history, with the server's error.
        await page.get_by_role("link", name="Mailings").click()
        await page.get_by_role("link", name="Premium notices", exact=True).click()
        await page.get_by_role("link", name="Send by e-mail").click()
        await page.get_by_label("Sending account").select_option(label="Capture desk (office@example.test)")
        await page.get_by_label("E-mail template").select_option(label="Premium notice")
        await page.get_by_role("button", name="Check before sending").click()
        await page.get_by_role("button", name="Send", exact=True).click()
        await expect(page.get_by_text("The send is over: 1 sent, 1 not sent.")).to_be_visible(timeout=WAIT_MS)
        await page.get_by_role("link", name="History").click()
        await expect(page.get_by_role("heading", name="Send history")).to_be_visible()
        await expect(page.get_by_role("cell", name="one@example.test")).to_be_visible()
        await page.get_by_label("Status").select_option(label="Failed")
        await page.get_by_role("button", name="Filter").click()
        await expect(page.get_by_role("cell", name="one@example.test")).to_have_count(0)
        await expect(page.get_by_role("cell", name="two@reject.test")).to_be_visible()
        await page.get_by_text("Details of the send to two@reject.test").click()
        error = page.locator("dd.error")
        await expect(error).to_be_visible()
        assert (await error.inner_text()).strip()
        await expect(page.get_by_role("button", name="Send this document again")).to_be_visible()
        await shot(page, "admin-history")

        # A viewer and an operator: no settings in the menu, and the page refused.
        for user in ("viewer", "operator"):
            page = await laptop_page(browser)
            await sign_in_as(page, stack, issuer, user)
            await expect(page.get_by_role("link", name="History")).to_be_visible()
            await expect(page.get_by_role("link", name="Settings")).to_have_count(0)
            await page.goto(f"{stack['console']}/settings")
            await expect(page.get_by_text("Settings are for the tenant's admins.")).to_be_visible()
            if user == "viewer":
                await shot(page, "admin-settings-refused")
            await page.context.close()
