from typing import Literal

from publipost_settings import ServiceSettings
from pydantic import Field

# What a record may render to. The sample letter renders about 7 KB of XML; a statement with a table of a few
# thousand lines, a few MB. Beyond this, LibreOffice spends minutes laying the document out.
MAX_DOCUMENT_BYTES = 10_000_000


class MergeSettings(ServiceSettings):
    service_name: str = "merge"
    http_port: int = 8103
    template_url: str = Field(default="http://127.0.0.1:8101", description="The template service's HTTP API.")
    directory_url: str = Field(
        default="http://127.0.0.1:8102",
        description="The recipient directory's HTTP API: the recipients of a segment a mailing started over HTTP names.",
    )
    max_records_file_bytes: int = Field(
        default=200_000_000, gt=0, description="Largest records file POST /mailings takes (.json, .ndjson, .csv, .xlsx)."
    )
    inline_records_bytes: int = Field(
        default=256_000,
        ge=0,
        le=500_000,
        description="Records of a mailing started over HTTP travel in merge.requested up to this many bytes of "
        "JSON; past it, they go to GridFS as NDJSON and the message names the file (a message stays under 1 MB).",
    )
    render_chunk_size: int = Field(default=20, ge=1, le=500, description="Documents per render.requested message.")
    combined_page_limit: int = Field(
        default=500, ge=1, description="Pages per part of a print file, unless the tenant sets its own."
    )
    render_timeout_s: float = Field(default=30.0, gt=0, description="Longest one record may take to render.")
    max_document_bytes: int = Field(
        default=MAX_DOCUMENT_BYTES,
        ge=1000,
        description=(
            "Largest document a record may render to: the XML its template produces (body, headers, footers, "
            "properties, footnotes), counted in characters as it is produced, and the largest string or list a "
            "template may build with * or +. A record over it fails alone, before it reaches render-pdf."
        ),
    )
    render_workers: int = Field(
        default=2, ge=1, le=32, description="Processes that render documents, each one record at a time."
    )
    renderer: Literal["compiled", "docxtpl"] = Field(
        default="compiled",
        description="How a record becomes a DOCX: each template compiled once and rendered per record "
        "(fast_rendering.py, same XML as docxtpl) or plain docxtpl per record (load, render, save); "
        "docs/library-parity.md.",
    )
    render_memory_bytes: int = Field(
        default=1 << 30,
        ge=256 << 20,
        description=(
            "Address space of each render process (RLIMIT_AS), the imported libraries (about 100 MB) included. "
            "A record whose template needs more fails alone; the process goes on."
        ),
    )
    http_timeout_s: float = Field(default=10.0, gt=0)
    stall_after_s: float = Field(
        default=600.0,
        gt=0,
        description="A mailing converting with no PDF back for this long has lost some: they are asked for again. "
        "Longer than render-pdf's queue may hold a mailing's chunks behind others' (a re-asked PDF it has "
        "already made costs a read, not a conversion).",
    )
    sweep_interval_s: float = Field(default=30.0, gt=0, description="How often stalled mailings are looked for.")
