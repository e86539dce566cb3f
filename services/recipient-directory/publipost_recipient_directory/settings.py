from publipost_records import WorkbookLimits
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
    max_import_uncompressed_bytes: int = Field(
        default=400_000_000, gt=0, description="Largest .xlsx once decompressed (its parts added up)."
    )
    max_import_shared_strings: int = Field(
        default=500_000,
        gt=0,
        description="Most distinct cell texts an .xlsx may share between its cells: all are held in memory while "
        "the file is read (2,000,000 took 600 MB).",
    )
    max_import_cells: int = Field(
        default=5_000_000,
        gt=0,
        description="Most cells read from an .xlsx sheet, empty ones before a filled one included.",
    )
    import_batch_size: int = Field(default=1000, ge=1, description="Recipients written per bulk write on import.")
    import_problems_listed: int = Field(
        default=10_000, ge=1, description="Problems listed in a refused import's answer; all are counted."
    )

    @property
    def workbook_limits(self) -> WorkbookLimits:
        return WorkbookLimits(
            max_uncompressed_bytes=self.max_import_uncompressed_bytes,
            max_shared_strings=self.max_import_shared_strings,
            max_cells=self.max_import_cells,
        )
