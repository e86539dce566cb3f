"""Everything decided about an uploaded DOCX, in order: the container, Word merge fields, the Jinja, the fields.

Pure and synchronous: the API runs it in a worker thread, so a slow or hostile file never stalls the service.
"""

from dataclasses import dataclass, field

from .domain import FieldSplit, TemplateRejected, check_entity_type, parse_custom_fields, split_fields
from .jinja_parts import fields_used
from .mergefields import convert_mergefields
from .package import PackageLimits, check_package


@dataclass(frozen=True)
class Inspection:
    docx: bytes  # what merge renders: the upload, or its conversion when it had Word merge fields
    fields: FieldSplit
    converted: bool = False
    field_mapping: dict[str, str] = field(default_factory=dict)
    conversion_notes: list[str] = field(default_factory=list)


def inspect_upload(data: bytes, *, limits: PackageLimits, entity_type: str, custom_fields: str) -> Inspection:
    check_entity_type(entity_type)
    check_package(data, limits)
    try:
        conversion = convert_mergefields(data)
        docx = conversion.docx if conversion else data
        mapping = conversion.mapping if conversion else {}
        custom = parse_custom_fields(custom_fields, word_names=mapping)
        used = fields_used(docx)
    except TemplateRejected:
        raise
    except Exception as exc:  # whatever a crafted file makes a parser throw, the file is at fault
        message = f"the document could not be read as a template: {type(exc).__name__}: {str(exc)[:300]}"
        raise TemplateRejected("file", message) from exc
    return Inspection(
        docx=docx,
        fields=split_fields(used, entity_type=entity_type, custom=custom),
        converted=conversion is not None,
        field_mapping=mapping,
        conversion_notes=conversion.notes if conversion else [],
    )
