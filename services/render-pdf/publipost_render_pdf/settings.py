from typing import Any, Literal

from publipost_settings import ServiceSettings
from pydantic import Field, model_validator


class RenderPdfSettings(ServiceSettings):
    service_name: str = "render-pdf"
    http_port: int = 8104
    workers: int = Field(default=1, ge=1, le=16, description="LibreOffice processes per replica (one per core).")
    prefetch: int = Field(
        default=12,
        ge=1,
        description="Chunks in flight per replica; defaults to twelve per worker: a full run in LibreOffice (batch_size "
        "letters, five chunks of 20), the next one combined beside it, the last one's PDFs stored; the rest stay "
        "queued for other replicas.",
    )
    soffice_path: str = Field(default="soffice", description="The LibreOffice executable.")
    uno_python: str = Field(default="/usr/bin/python3", description="The Python that has LibreOffice's uno module.")
    soffice_allocator: str = Field(
        default="jemalloc",
        description="Memory allocator preloaded into LibreOffice when installed (a library name as ctypes finds it; "
        "empty for glibc's): LibreOffice spends a sixth of a conversion in malloc and free, and lays out a combined "
        "run about 13% faster with jemalloc.",
    )
    restart_after: int = Field(
        default=200, ge=1, description="LibreOffice runs (a combined chunk counts as one) before a worker is renewed."
    )
    conversion_timeout_s: float = Field(
        default=60.0, gt=0, description="Longest one LibreOffice run may take: a document, or a chunk combined as one."
    )
    start_timeout_s: float = Field(default=90.0, gt=0, description="Longest LibreOffice may take to start.")
    batch_size: int = Field(
        default=100,
        ge=1,
        description="Most documents laid out as one combined document: chunks in flight together share a run "
        "up to this, a larger chunk makes several.",
    )
    docx_combiner: Literal["publipost", "docxcompose"] = Field(
        default="publipost",
        description="How a run's documents become one DOCX: publipost's combiner (combine.py: parts copied as "
        "they are, unused styles dropped) or docxcompose with python-docx (about 45x slower to combine, laid out "
        "1.7x slower, documents whose headers or footers hold images converted alone); docs/library-parity.md.",
    )
    pdf_splitter: Literal["objects", "pypdf"] = Field(
        default="objects",
        description="How a run's PDF is cut per document: object by object for LibreOffice's plain layout "
        "(pypdf for any other), or always through pypdf's reader and writer; docs/library-parity.md.",
    )
    backend: Literal["libreoffice", "gotenberg"] = Field(
        default="libreoffice", description="Conversion backend of tenants that have none of their own."
    )
    gotenberg_url: str | None = Field(
        default=None,
        description="Gotenberg server (http://host:3000) for the gotenberg backend, unless a tenant names one.",
    )
    gotenberg_timeout_s: float = Field(default=120.0, gt=0, description="Longest one Gotenberg request may take.")
    yearly_conversion_limit: int | None = Field(
        default=None,
        ge=0,
        description="Conversions a tenant may run on this service's LibreOffice per calendar year, unless set for "
        "that tenant over HTTP; unset means unlimited.",
    )

    @model_validator(mode="before")
    @classmethod
    def _twelve_chunks_per_worker(cls, values: Any) -> Any:
        # A bounded queue: a replica holds no more chunks than keep its LibreOffice processes busy.
        if isinstance(values, dict) and "prefetch" not in values and "workers" in values:
            values = {**values, "prefetch": 12 * int(values["workers"])}
        return values
