from pydantic import Field

from publipost_settings import ServiceSettings


class TemplateSettings(ServiceSettings):
    service_name: str = "template"
    http_port: int = 8101
    max_template_bytes: int = Field(default=10_000_000, description="Largest DOCX accepted on upload.")
