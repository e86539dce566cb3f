"""What makes an uploaded file a usable template, and which fields it asks for."""

import io
import zipfile
from dataclasses import dataclass

import jinja2
from docxtpl import DocxTemplate

DOCX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


class TemplateRejected(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class TemplateInfo:
    fields: list[str]


def inspect_template(data: bytes, *, max_bytes: int) -> TemplateInfo:
    """Check that `data` is a DOCX whose Jinja parses, and list the fields it uses."""
    if len(data) > max_bytes:
        raise TemplateRejected("file", f"{len(data)} bytes is over the {max_bytes}-byte limit")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise TemplateRejected("file", "not a DOCX file (not a zip archive)")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if "word/document.xml" not in archive.namelist():
            raise TemplateRejected("file", "not a DOCX file (no word/document.xml)")
    try:
        fields = DocxTemplate(io.BytesIO(data)).get_undeclared_template_variables()
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateRejected("file", f"template syntax error at line {exc.lineno}: {exc.message}") from exc
    return TemplateInfo(fields=sorted(fields))
