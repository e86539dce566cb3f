"""The console's journey in a real browser (Debian's chromium, headless, driven by Playwright) against the
real services, the development issuer and the SMTP capture: a person imports the directory (a refused file
first, with its problems listed, then a good one), starts a mailing from a directory selection and another
from an uploaded CSV file, sends the first, sees what was sent and what was not, fixes an address and sends
again, renames a mailing, uploads a template's new version and downloads a print file.

Screenshots of each screen go to .local/screenshots/ (people-*) for review."""

import csv
import email
import email.policy
import io
import re
from pathlib import Path

import docx
import pytest
from playwright.async_api import Page, expect
from pypdf import PdfReader

from tests.browser.conftest import SAMPLE, WAIT_MS, chromium, laptop_page, shot, sign_in
from tests.support import sample_record, wait_until

pytestmark = pytest.mark.slow

REFUSED_DIRECTORY = (
    "customer_number,document_type,name,email\n"
    "C0001,invoice,Alice Martin,not-an-address\n"
    "C0002,letter,Bob Durand,two@example.test\n"
)
DIRECTORY = (
    "customer_number,document_type,name,email,family,attr.mileage,"
    "contact_1_name,contact_1_email,contact_1_correspondence_types\n"
    "C0001,invoice,Alice Martin,one@example.test,company,120000,Paul Compta,compta@example.test,invoice\n"
    "C0002,invoice,Bob Durand,two@reject.test,company,150000,,,\n"  # the mail server refuses it
    "C0003,invoice,Carol Petit,three@example.test,individual,80000,,,\n"  # under the mileage chosen
)


def client_letter(folder: Path) -> Path:
    """A template for the directory's clients: the fields a client's record has, and one custom field."""
    letter = docx.Document()
    letter.add_paragraph("Dear {{ name }},")
    letter.add_paragraph("Your customer number is {{ customer_number }}.")
    letter.add_paragraph("{{ signatory }}")
    path = folder / "client-letter.docx"
    letter.save(str(path))
    return path


def records_csv(folder: Path) -> Path:
    rows = [sample_record(n, email=f"uploaded{n}@example.test") for n in (7, 8)]
    path = folder / "records.csv"
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def recipients(stack) -> list[str]:
    messages = [email.message_from_bytes(raw, policy=email.policy.default) for raw in stack["mailbox"].messages()]
    return sorted(str(m["To"]) for m in messages if m["Subject"].startswith("Your notice"))


async def send(page: Page, *, will_send: str, over: str) -> None:
    await page.get_by_label("Sending account").select_option(label="The platform's account")
    await page.get_by_label("E-mail template").select_option(label="Premium notice")
    await page.get_by_role("button", name="Check before sending").click()
    await expect(page.get_by_text(will_send)).to_be_visible()
    await page.get_by_role("button", name="Send", exact=True).click()
    await expect(page.get_by_text(over)).to_be_visible(timeout=WAIT_MS)


async def test_a_person_imports_the_directory_starts_mailings_sends_fixes_renames_and_uploads(stack, tmp_path):
    refused, good = tmp_path / "refused.csv", tmp_path / "clients.csv"
    refused.write_text(REFUSED_DIRECTORY)
    good.write_text(DIRECTORY)
    async with chromium() as browser:
        page = await laptop_page(browser)
        await sign_in(page, stack, "User name", "Password", "Sign in")
        await expect(page.get_by_role("heading", name="Mailings")).to_be_visible()

        # The directory's import: a refused file lists every problem, with its line and column.
        await page.get_by_role("link", name="Directory").click()
        await page.get_by_role("link", name="Import").click()
        async with page.expect_download() as downloading:
            await page.get_by_role("link", name="sample CSV file").click()
        sample = Path(await (await downloading.value).path()).read_text()
        assert "customer_number" in sample
        await page.get_by_label("File to import").set_input_files(refused)
        await page.get_by_role("button", name="Import", exact=True).click()
        await expect(page.get_by_text("the file was not imported, nothing was stored: 2 problems")).to_be_visible()
        problems = page.get_by_role("table", name="Problems of refused.csv")
        await expect(problems.get_by_role("row")).to_have_count(3)
        await expect(problems.get_by_role("row").nth(1)).to_contain_text("2")
        await expect(problems.get_by_role("row").nth(1)).to_contain_text("email")
        await expect(problems.get_by_role("row").nth(2)).to_contain_text("document_type")
        await shot(page, "people-01-import-refused")
        await page.get_by_label("File to import").set_input_files(good)
        await page.get_by_role("button", name="Import", exact=True).click()
        await expect(page.get_by_text("clients.csv: 3 clients, 3 created, 0 updated.")).to_be_visible()
        await shot(page, "people-02-import-done")

        # The clients, searched, and a client's contacts.
        await page.get_by_role("link", name="Clients", exact=True).click()
        await expect(page.get_by_role("link", name="C0003")).to_be_visible()
        await page.get_by_label("Search").fill("Alice")
        await page.get_by_role("button", name="Search").click()
        await expect(page.get_by_role("link", name="C0003")).to_have_count(0)
        await shot(page, "people-03-clients")
        await page.get_by_role("link", name="C0001").click()
        await expect(page.get_by_role("heading", name="Client C0001")).to_be_visible()
        await expect(page.get_by_role("cell", name="compta@example.test")).to_be_visible()
        await shot(page, "people-04-client")

        # A template for the clients, uploaded with its custom field.
        await page.get_by_role("link", name="Templates").click()
        await page.get_by_label("Name", exact=True).fill("Client letter")
        await page.get_by_label("DOCX file").set_input_files(client_letter(tmp_path))
        await page.get_by_label("Custom fields").fill("signatory")
        await page.get_by_label("Validation required").uncheck()
        await shot(page, "people-05-template-upload")
        await page.get_by_role("button", name="Upload", exact=True).click()
        await expect(page.get_by_role("heading", name="Template Client letter")).to_be_visible()
        await expect(page.get_by_text("Version 1, Standard, for client records.")).to_be_visible()

        # A mailing from a new directory selection: the clients whose mileage is over 100,000.
        await page.get_by_role("link", name="New mailing with it").click()
        await page.get_by_label("Name", exact=True).fill("Spring notices")
        await expect(page.get_by_label("Template")).to_have_value(re.compile(".+"))
        await page.get_by_label("signatory").fill("Jane Manager")
        await page.get_by_label("A new selection of the directory").check()
        await page.get_by_text("A new selection of the directory", exact=True).last.click()  # opens its part
        await page.get_by_label("Save the selection as").fill("High mileage")
        await page.get_by_label("Attribute of condition 1").fill("mileage")
        await page.get_by_label("Comparison of condition 1").select_option(label="more than")
        await page.get_by_label("Value of condition 1").fill("100000")
        await shot(page, "people-06-new-mailing-selection")
        await page.get_by_role("button", name="Start the mailing").click()
        await expect(page.get_by_role("heading", name="Mailing Spring notices")).to_be_visible()
        await expect(page.get_by_text("Ready", exact=True)).to_be_visible(timeout=WAIT_MS)
        await expect(page.get_by_text("2 documents, 0 failed")).to_be_visible()
        await expect(page.get_by_role("cell", name="C0003")).to_have_count(0)
        await shot(page, "people-07-mailing-from-selection")

        # A mailing from an uploaded CSV file: merge's refusal (a custom field left out) is shown on the form.
        await page.get_by_role("link", name="New mailing").first.click()
        await page.get_by_label("Name", exact=True).fill("Uploaded notices")
        await page.get_by_label("Template").select_option(label="Notice (v1)")
        await expect(page.get_by_label("signatory")).to_be_visible()
        await page.get_by_label("An uploaded file").check()
        await page.get_by_label("Records file").set_input_files(records_csv(tmp_path))
        await page.get_by_role("button", name="Start the mailing").click()
        await expect(page.get_by_role("alert")).to_contain_text("signatory")
        await shot(page, "people-08-new-mailing-refused")
        await page.get_by_label("signatory").fill("Jane Manager")
        await page.get_by_label("Records file").set_input_files(records_csv(tmp_path))
        await page.get_by_role("button", name="Start the mailing").click()
        await expect(page.get_by_role("heading", name="Mailing Uploaded notices")).to_be_visible()
        await expect(page.get_by_text("Ready", exact=True)).to_be_visible(timeout=WAIT_MS)
        await expect(page.get_by_role("link", name="INV-0008")).to_be_visible()
        part_link = page.get_by_role("link", name="Part 1: 2 documents")
        async with page.expect_download() as downloading:
            await part_link.click()
        pdf = Path(await (await downloading.value).path()).read_bytes()
        assert pdf.startswith(b"%PDF") and len(PdfReader(io.BytesIO(pdf)).pages) >= 2
        await shot(page, "people-09-mailing-from-file")

        # Send the selection's mailing: one is sent, the other's address is refused by the mail server.
        await page.get_by_role("link", name="Mailings", exact=True).click()
        await page.get_by_role("link", name="Spring notices", exact=True).click()
        await page.get_by_role("link", name="Send by e-mail").click()
        await send(page, will_send="2 of 2 documents will be sent.", over="The send is over: 1 sent, 1 not sent.")
        await page.get_by_role("link", name="See the mailings").click()
        await expect(page.get_by_role("link", name="Spring notices (sent by e-mail)")).to_be_visible()
        await shot(page, "people-10-sent-and-not-sent")

        # Fix the address that was refused, then send again.
        await page.get_by_role("link", name="Spring notices (not sent by e-mail)", exact=True).click()
        await page.get_by_role("link", name="Fix the address of C0002").click()
        await page.get_by_label("E-mail address").fill("two@example.test")
        await page.get_by_role("button", name="Save the address").click()
        await expect(page.get_by_text("The address of C0002 is saved.")).to_be_visible()
        await page.get_by_role("link", name="Back to the mailing").click()
        # One document: its client's several addresses are offered; the directory's, just fixed, is chosen.
        await page.get_by_role("link", name="Re-send").click()
        await expect(page.get_by_label("two@reject.test (the document's record)")).to_be_visible()
        await page.get_by_label("two@example.test (the client's address in the directory)").check()
        await shot(page, "people-11-resend-address-choice")
        await send(page, will_send="1 of 1 documents will be sent.", over="The send is over: 1 sent, 0 not sent.")
        await shot(page, "people-12-resent")
        await wait_until(lambda: "two@example.test" in recipients(stack), timeout=30)
        assert recipients(stack) == ["one@example.test", "two@example.test"]

        # Rename a mailing from the list.
        await page.goto(f"{stack['console']}/mailings")
        await page.get_by_role("button", name="Rename Uploaded notices").click()
        await page.get_by_label("New name").fill("April notices")
        await shot(page, "people-13-rename")
        await page.get_by_role("button", name="Save the name").click()
        await expect(page.get_by_role("link", name="April notices", exact=True)).to_be_visible()
        await expect(page.get_by_role("link", name="Uploaded notices", exact=True)).to_have_count(0)

        # The template: its fields, then a new version.
        await page.get_by_role("link", name="Templates").click()
        await shot(page, "people-14-templates")
        await page.get_by_role("link", name="Notice", exact=True).click()
        await expect(page.get_by_role("heading", name="Template Notice")).to_be_visible()
        await expect(page.get_by_text("document_number").first).to_be_visible()
        await page.get_by_label("DOCX file").set_input_files(SAMPLE)
        await page.get_by_role("button", name="Upload the version").click()
        await expect(page.get_by_text("Version 2 is uploaded.")).to_be_visible()
        await expect(page.get_by_role("row")).to_have_count(3)  # the header, versions 2 and 1
        await shot(page, "people-15-template-version")

        # The saved selections and the e-mail templates.
        await page.get_by_role("link", name="E-mail templates").click()
        await expect(page.get_by_role("link", name="Premium notice")).to_be_visible()
        await shot(page, "people-16-email-templates")
        await page.get_by_role("link", name="Directory").click()
        await page.get_by_role("link", name="Selections").click()
        await expect(page.get_by_role("row", name="High mileage")).to_contain_text("2 clients")
        await shot(page, "people-17-selections")
