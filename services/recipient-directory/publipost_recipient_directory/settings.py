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
    max_import_bytes: int = Field(default=200_000_000, gt=0, description="Largest recipient file accepted.")
    import_batch_size: int = Field(default=1000, ge=1, description="Recipients written per bulk write on import.")
    import_problems_listed: int = Field(
        default=10_000, ge=1, description="Problems listed in a refused import's answer; all are counted."
    )
