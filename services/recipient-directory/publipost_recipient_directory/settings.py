from publipost_settings import ServiceSettings
from pydantic import Field

DOCUMENT_TYPES = (
    "invoice",
    "credit_note",
    "quote",
    "order_confirmation",
    "delivery_note",
    "statement",
    "payment_reminder",
    "due_notice",
    "premium_receipt",
    "contract",
    "letter",
)


class RecipientDirectorySettings(ServiceSettings):
    service_name: str = "recipient-directory"
    http_port: int = 8102
    document_types: list[str] = Field(
        default=list(DOCUMENT_TYPES),
        min_length=1,
        description="Document types a recipient may be filed under (PUBLIPOST_DOCUMENT_TYPES, a JSON list).",
    )
