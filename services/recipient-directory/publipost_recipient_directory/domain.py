"""Address resolution: which e-mail a document goes to, and which rule gave it (or why there is none)."""

import re
from dataclasses import dataclass
from typing import Any, Literal

# One @, something on each side, a dot in the domain, no spaces or angle brackets:
# what a mail server needs to route; the server has the last word.
_ADDRESS = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;.]+$")

Rule = Literal["record", "directory"]


def is_valid_address(address: str) -> bool:
    return bool(_ADDRESS.match(address)) and len(address) <= 254


def normalise_address(address: str) -> str:
    """Addresses compare without surrounding spaces and with a lower-case domain."""
    local, _, domain = address.strip().rpartition("@")
    return f"{local}@{domain.lower()}"


@dataclass(frozen=True)
class Resolution:
    email: str | None
    rule: Rule | None
    reason: str | None = None


def resolve(record_email: str | None, customer_number: str | None, recipient: dict[str, Any] | None) -> Resolution:
    """The record's own address first, then the directory entry of the customer number."""
    reasons = []
    if record_email and record_email.strip():
        if is_valid_address(record_email.strip()):
            return Resolution(normalise_address(record_email), "record")
        reasons.append(f"the record's e-mail {record_email!r} is not a valid address")
    if not customer_number:
        reasons.append("the record has no customer number to look up")
    elif recipient is None:
        reasons.append(f"customer {customer_number} is not in the recipient directory")
    elif not recipient.get("email"):
        reasons.append(f"customer {customer_number} has no e-mail in the recipient directory")
    else:
        return Resolution(recipient["email"], "directory")
    if not record_email:
        reasons.insert(0, "the record has no e-mail")
    return Resolution(None, None, "; ".join(reasons))
