from typing import Any

from publipost_settings import ServiceSettings
from pydantic import Field, model_validator


class RenderPdfSettings(ServiceSettings):
    service_name: str = "render-pdf"
    http_port: int = 8104
    workers: int = Field(default=1, ge=1, le=16, description="LibreOffice processes per replica (one per core).")
    prefetch: int = Field(default=1, ge=1, description="Chunks in flight per replica; defaults to one per worker.")
    soffice_path: str = Field(default="soffice", description="The LibreOffice executable.")
    uno_python: str = Field(default="/usr/bin/python3", description="The Python that has LibreOffice's uno module.")
    restart_after: int = Field(default=200, ge=1, description="Conversions before a worker's LibreOffice is renewed.")
    conversion_timeout_s: float = Field(default=60.0, gt=0, description="Longest one document may take.")
    start_timeout_s: float = Field(default=90.0, gt=0, description="Longest LibreOffice may take to start.")

    @model_validator(mode="before")
    @classmethod
    def _one_chunk_per_worker(cls, values: Any) -> Any:
        # A bounded queue: a replica takes no more chunks than it has LibreOffice processes.
        if isinstance(values, dict) and "prefetch" not in values and "workers" in values:
            values = {**values, "prefetch": values["workers"]}
        return values
