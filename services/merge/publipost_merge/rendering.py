"""DOCX rendering and the combined print file."""

import io
from collections.abc import Iterable
from typing import Any

from docxtpl import DocxTemplate
from jinja2.sandbox import SandboxedEnvironment
from pypdf import PdfReader, PdfWriter

# Templates read their data and nothing else: the sandbox refuses attribute
# walks to Python internals (__class__, __globals__ ...).
_JINJA = SandboxedEnvironment()


class RenderFailed(ValueError):
    """This record could not be rendered; it fails alone."""


def render_docx(template: bytes, context: dict[str, Any]) -> bytes:
    document = DocxTemplate(io.BytesIO(template))
    try:
        document.render(context, jinja_env=_JINJA, autoescape=True)
    except Exception as exc:
        raise RenderFailed(f"{type(exc).__name__}: {exc}") from exc
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def combine_pdfs(pdfs: Iterable[bytes]) -> tuple[bytes, int]:
    """All documents one after the other, print-ready. Returns the PDF and its page count."""
    writer = PdfWriter()
    for pdf in pdfs:
        writer.append(PdfReader(io.BytesIO(pdf)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue(), len(writer.pages)
