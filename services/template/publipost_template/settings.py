from publipost_settings import ServiceSettings
from pydantic import Field


class TemplateSettings(ServiceSettings):
    service_name: str = "template"
    http_port: int = 8101
    max_template_bytes: int = Field(default=10_000_000, ge=1, description="Largest DOCX accepted on upload.")
    max_uncompressed_bytes: int = Field(
        default=50_000_000, ge=1, description="Largest total size of a DOCX's entries once decompressed."
    )
    max_zip_entries: int = Field(default=1000, ge=1, description="Most entries (XML parts, images...) in a DOCX.")
    max_compression_ratio: float = Field(
        default=100.0,
        gt=1,
        description="Highest uncompressed/compressed ratio of one entry of 1 MiB or more (zip bombs run far higher).",
    )
