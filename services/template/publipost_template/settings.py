from publipost_settings import ServiceSettings
from pydantic import Field


class TemplateSettings(ServiceSettings):
    service_name: str = "template"
    http_port: int = 8101
    max_template_bytes: int = Field(default=10_000_000, description="Largest DOCX accepted on upload.")
