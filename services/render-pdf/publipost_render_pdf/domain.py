"""What render-pdf knows about documents, batches and quotas, without LibreOffice, a database or a broker."""

import io
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from pathlib import PurePath

from publipost_storage import derived_blob_id
from pypdf import PdfReader
from pypdf.errors import PdfReadError


class UnreadablePdf(ValueError):
    pass


class PageMapMismatch(ValueError):
    """The combined PDF does not say where every document starts: split nothing, convert one by one."""


def pdf_blob_id(document_id: str) -> str:
    """One PDF per document: a redelivered chunk finds it instead of converting again."""
    return derived_blob_id("pdf", document_id)


def pdf_filename(docx_filename: str) -> str:
    return f"{PurePath(docx_filename).stem}.pdf"


def page_count(pdf: bytes) -> int:
    """Pages of a converted document; a PDF pypdf cannot read is a failed conversion."""
    try:
        pages = len(PdfReader(io.BytesIO(pdf)).pages)
    except (PdfReadError, ValueError) as exc:
        raise UnreadablePdf(f"LibreOffice produced an unreadable PDF: {exc}") from exc
    if pages == 0:
        raise UnreadablePdf("LibreOffice produced a PDF with no pages")
    return pages


# --- batches and the page map ---------------------------------------------------------------------


def batches(keys: Sequence[Hashable | None], max_size: int) -> list[list[int]]:
    """Positions of the documents to lay out together: same key (same styles and shared parts),
    at most `max_size` each, in chunk order. A document whose key is None goes alone."""
    groups: dict[Hashable, list[int]] = {}
    result: list[list[int]] = []
    for position, key in enumerate(keys):
        if key is None:
            result.append([position])
            continue
        group = groups.get(key)
        if group is None or len(group) >= max_size:
            group = groups[key] = []
            result.append(group)
        group.append(position)
    return result


def page_map(starts: Sequence[int | None], total_pages: int) -> list[range]:
    """Pages (0-based) of each document of a combined PDF, from the page each one starts on.

    Every document must have a start, starts must strictly increase (each
    document starts a new page) and lie within the PDF; anything else means
    the layout did not go as planned, and no page is handed to the wrong recipient.
    """
    if not starts:
        raise PageMapMismatch("no documents")
    missing = [index for index, start in enumerate(starts) if start is None]
    if missing:
        raise PageMapMismatch(f"no start page found for documents {missing}")
    pages = [int(start) for start in starts if start is not None]
    if pages[0] != 0:
        raise PageMapMismatch(f"the first document starts on page {pages[0] + 1}, not 1")
    ends = [*pages[1:], total_pages]
    for index, (start, end) in enumerate(zip(pages, ends, strict=True)):
        if not start < end <= total_pages:
            raise PageMapMismatch(f"document {index} would span pages {start + 1} to {end} of a {total_pages}-page PDF")
    return [range(start, end) for start, end in zip(pages, ends, strict=True)]


# --- backends and quotas --------------------------------------------------------------------------


class Backend(StrEnum):
    LIBREOFFICE = "libreoffice"
    GOTENBERG = "gotenberg"


@dataclass(frozen=True)
class BackendChoice:
    backend: Backend
    gotenberg_url: str | None = None

    @property
    def external(self) -> bool:
        """Conversions that do not run on this service's LibreOffice: the included quota does not bind them."""
        return self.backend is not Backend.LIBREOFFICE


def choose_backend(
    tenant_backend: str | None, tenant_gotenberg_url: str | None, default: str, default_gotenberg_url: str | None
) -> BackendChoice:
    """The tenant's own backend when it has one configured, else the service's."""
    if tenant_backend:
        return BackendChoice(Backend(tenant_backend), tenant_gotenberg_url or default_gotenberg_url)
    return BackendChoice(Backend(default), default_gotenberg_url)


class ServiceLimit(Enum):
    """A tenant's yearly limit when it has none of its own: the service's applies (its own None is unlimited)."""

    APPLIES = "the service's limit"


@dataclass(kw_only=True)
class TenantConversionSettings:
    """A tenant's own conversion settings; whatever it has not set is the service's."""

    id: str  # the tenant's
    yearly_limit: int | None | ServiceLimit = ServiceLimit.APPLIES
    backend: Backend | None = None
    gotenberg_url: str | None = None
    # A paid converter that takes over the documents past the included quota, until the year ends.
    overflow_backend: Backend | None = None
    overflow_gotenberg_url: str | None = None

    def limit(self, default: int | None) -> int | None:
        """The tenant's own limit when one is set (None there means unlimited), else the service's."""
        return default if self.yearly_limit is ServiceLimit.APPLIES else self.yearly_limit

    @property
    def has_own_backend(self) -> bool:
        return self.backend is not None

    def backend_choice(self, default: str, default_gotenberg_url: str | None) -> BackendChoice:
        return choose_backend(self.backend, self.gotenberg_url, default, default_gotenberg_url)

    def overflow_choice(self, default_gotenberg_url: str | None) -> BackendChoice | None:
        """Where the documents past the included quota go, when the tenant has a paid converter for them."""
        if self.overflow_backend is None:
            return None
        return BackendChoice(self.overflow_backend, self.overflow_gotenberg_url or default_gotenberg_url)


def conversion_year(occurred_at: datetime) -> int:
    """Conversions count in the year the chunk was asked for, so a redelivery counts in the same year."""
    return occurred_at.year


def quota_grant(used: int, limit: int | None, wanted: int) -> int:
    """How many of `wanted` conversions fit in what is left of the yearly limit (None: unlimited)."""
    if limit is None:
        return wanted
    return max(0, min(wanted, limit - used))


def quota_refusal(tenant_id: str, limit: int | None) -> str:
    return f"conversion quota of {limit} per year reached for tenant {tenant_id}"


def queue_wait_s(occurred_at: datetime, started_at: datetime) -> float:
    """Time a chunk waited between being asked for and being taken up (never negative across clock skew)."""
    return max(0.0, (started_at - occurred_at).total_seconds())
