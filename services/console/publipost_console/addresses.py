"""A send of one document: the recipient's several addresses to choose from, where dispatch would otherwise
pick one by its rules (the record's, the directory client's, billing, main, a contact for the document's
correspondence type)."""

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .web import Console


@dataclass(frozen=True)
class AddressChoice:
    address: str
    source: str  # record, directory, billing, main, contact
    contact: str = ""  # a contact's name and correspondence types


def address_choices(document: dict[str, Any], recipient: dict[str, Any] | None) -> list[AddressChoice]:
    """Every address known for the document's recipient, once each, the first source naming it kept."""
    found: list[AddressChoice] = []
    seen: set[str] = set()

    def add(address: str | None, source: str, contact: str = "") -> None:
        if address and address.lower() not in seen:
            seen.add(address.lower())
            found.append(AddressChoice(address, source, contact))

    add(document.get("email"), "record")
    recipient = recipient or {}
    add(recipient.get("email"), "directory")
    add(recipient.get("billing_email"), "billing")
    add(recipient.get("main_email"), "main")
    for contact in recipient.get("contacts") or []:
        described = ", ".join(filter(None, [contact.get("name"), *contact.get("correspondence_types", [])]))
        add(contact.get("email"), "contact", described)
    return found


async def single_document_addresses(parts: Console, token: str, mailing: dict[str, Any]) -> list[AddressChoice]:
    """The choices when the mailing has exactly one document; none otherwise (each document its own)."""
    if mailing.get("documents") != 1:
        return []
    page = await parts.services.json("merge", f"/mailings/{quote(mailing['id'])}/documents", token, params={"limit": 1})
    if not page["items"]:
        return []
    document = page["items"][0]
    recipient = None
    if customer := document.get("customer_number"):
        answer = await parts.services.call("directory", "GET", f"/recipients/{quote(customer)}", token, ok=(404,))
        recipient = answer.json() if answer.status_code == 200 else None
    return address_choices(document, recipient)
