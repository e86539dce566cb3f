"""Dispatch rules, free of I/O: delivery states, what an SMTP answer means, subject and body variables."""

import string
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from publipost_contracts import deterministic_id


class DeliveryState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # handed to SMTP; if the process dies here the send is retried with the same Message-ID
    SENT = "sent"
    FAILED = "failed"


PENDING = (DeliveryState.QUEUED, DeliveryState.SENDING)
FINAL = (DeliveryState.SENT, DeliveryState.FAILED)


class DispatchStatus(StrEnum):
    FANNING_OUT = "fanning_out"
    SENDING = "sending"
    COMPLETED = "completed"
    REFUSED = "refused"


class Verdict(StrEnum):
    RETRY = "retry"
    FAILED = "failed"


def dispatch_key(tenant_id: str, dispatch_id: str) -> str:
    return str(deterministic_id("dispatch", tenant_id, dispatch_id))


def delivery_id_for(dispatch_key_: str, document_id: str) -> str:
    return str(deterministic_id("delivery", dispatch_key_, document_id))


def message_id_for(delivery_id: str, domain: str) -> str:
    """One Message-ID per delivery: a resend after a crash is recognisable as the same message."""
    return f"<{delivery_id}@{domain}>"


def verdict_for_reply(code: int) -> Verdict:
    """4xx is a temporary refusal worth retrying; 5xx is final."""
    return Verdict.RETRY if 400 <= code < 500 else Verdict.FAILED


class UnsafeHeader(ValueError):
    """A header value carrying CR or LF could smuggle extra headers into the message."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} contains a line break (header injection refused)")
        self.field = field


def check_header(field: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise UnsafeHeader(field)
    return value


class UnknownVariable(KeyError):
    def __init__(self, field: str, name: str) -> None:
        super().__init__(f"{field}: unknown variable {{{name}}}")
        self.field = field
        self.name = name

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class DocumentFacts:
    """What a subject or a body may name about the document being sent."""

    document_number: str
    document_name: str
    recipient_name: str | None
    customer_number: str | None

    def variables(self, today: date) -> dict[str, str]:
        return {
            "document_number": self.document_number,
            "document_name": self.document_name,
            "client_name": self.recipient_name or "",
            "customer_number": self.customer_number or "",
            "date": today.strftime("%d/%m/%Y"),
        }


def fill(field: str, template: str, variables: dict[str, Any]) -> str:
    """Replace {name} variables; a name the document does not have is an error naming it."""
    out = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        out.append(literal)
        if name is None:
            continue
        if name not in variables:
            raise UnknownVariable(field, name)
        out.append(format(variables[name], spec or ""))
    return "".join(out)
