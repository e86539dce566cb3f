"""Word's own mail-merge fields («Name») turned into docxtpl placeholders ({{ name }}).

Word writes a merge field two ways: a simple field (<w:fldSimple w:instr=" MERGEFIELD Name ">) or a
complex one spread over runs (fldChar begin, instrText " MERGEFIELD Name \\* MERGEFORMAT ", fldChar
separate, the runs showing «Name», fldChar end). Each becomes one run holding the placeholder, with the
formatting of the text it replaces. Switches that have a Jinja equivalent keep their meaning
(\\* Upper → |upper, \\b / \\f text before / after when the field is not empty); date and number pictures
(\\@, \\#) do not, and the conversion says so.
"""

import copy
import io
import re
import zipfile
from dataclasses import dataclass, field

from lxml import etree

from .domain import TemplateRejected, safe_identifier
from .package import overrides, parse_part, part_label

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_XML_NS = "http://www.w3.org/XML/1998/namespace"
_PARTS_WITH_FIELDS = (  # what docxtpl renders; a placeholder anywhere else would print as is
    "wordprocessingml.document.main+xml",
    "wordprocessingml.header+xml",
    "wordprocessingml.footer+xml",
    "wordprocessingml.footnotes+xml",
)
_SETTINGS = "wordprocessingml.settings+xml"
# Only field instructions count ("NEXT" in the letter's text is not a field); Word may split one over runs.
_INSTRUCTIONS = re.compile(rb'w:instr="([^"]*)"|<w:instrText[^>]*>([^<]*)<')
_MAIL_MERGE_KINDS = re.compile(r"\b(MERGEFIELD|ADDRESSBLOCK|GREETINGLINE|NEXTIF|SKIPIF|NEXT)\b", re.IGNORECASE)
_TOKEN = re.compile(r'"([^"]*)"|(\S+)')
_CASE_FILTERS = {"upper": "upper", "lower": "lower", "firstcap": "capitalize", "caps": "title"}
_UNSUPPORTED = {
    "ADDRESSBLOCK": "Word's address block is not supported: insert the address fields (name, address, postal_code, "
    "city) one by one",
    "GREETINGLINE": "Word's greeting line is not supported: write the greeting with the name field",
    "NEXT": "NEXT moves to another record, but each record gets its own document here",
    "NEXTIF": "NEXTIF moves to another record, but each record gets its own document here",
    "SKIPIF": "SKIPIF skips records; leave the records out of the merge request instead",
}


def _w(tag: str) -> str:
    return f"{{{W}}}{tag}"


@dataclass
class Conversion:
    docx: bytes
    mapping: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Field:
    instruction: str = ""
    in_result: bool = False
    result_runs: list[etree._Element] = field(default_factory=list)


def _uses_mail_merge(xml: bytes) -> bool:
    instructions = b"".join(simple + b" " if simple else complex_ for simple, complex_ in _INSTRUCTIONS.findall(xml))
    return _MAIL_MERGE_KINDS.search(instructions.decode("utf-8", "replace")) is not None


def convert_mergefields(data: bytes) -> Conversion | None:
    """The same DOCX with every MERGEFIELD a placeholder, and Word's link to its data source removed;
    None when the document has no mail-merge field."""
    conversion = Conversion(docx=b"")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        replaced: dict[str, bytes] = {}
        for name in _parts_of_type(archive, _PARTS_WITH_FIELDS):
            xml = archive.read(name)
            if _uses_mail_merge(xml):
                root = parse_part(xml, name)
                _convert_part(root, part_label(name), conversion)
                replaced[name] = _serialize(root)
        if not replaced:
            return None
        for name in _parts_of_type(archive, (_SETTINGS,)):
            root = parse_part(archive.read(name), name)
            # Without this, Word asks for the original data source (a spreadsheet on someone's disk) on opening.
            for mail_merge in root.findall(_w("mailMerge")):
                root.remove(mail_merge)
            replaced[name] = _serialize(root)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as converted:
            for entry in archive.infolist():
                converted.writestr(entry, replaced.get(entry.filename) or archive.read(entry))
    conversion.docx = out.getvalue()
    return conversion


def _convert_part(root: etree._Element, part: str, conversion: Conversion) -> None:
    for simple in list(root.iter(_w("fldSimple"))):
        placeholder = _placeholder(simple.get(_w("instr"), ""), part, conversion)
        if placeholder is not None:
            first_run = next(simple.iter(_w("r")), None)
            simple.addprevious(_run(placeholder, first_run))
            simple.getparent().remove(simple)

    # Complex fields nest (an IF holding a MERGEFIELD): a stack of open fields, and for the outermost one
    # every run from its begin to its end, removed once it is replaced.
    open_fields: list[_Field] = []
    span: list[etree._Element] = []
    replacements: list[tuple[list[etree._Element], str, etree._Element | None]] = []
    for run in list(root.iter(_w("r"))):
        if open_fields:
            span.append(run)
        char = run.find(_w("fldChar"))
        kind = char.get(_w("fldCharType")) if char is not None else None
        if kind == "begin":
            if not open_fields:
                span = [run]
            open_fields.append(_Field())
        elif not open_fields:
            continue
        elif kind == "separate":
            open_fields[-1].in_result = True
        elif kind == "end":
            done = open_fields.pop()
            if open_fields:
                _refuse_nested(done, open_fields[0], part)
                continue
            placeholder = _placeholder(done.instruction, part, conversion)
            if placeholder is not None:
                style_from = done.result_runs[0] if done.result_runs else span[0]
                replacements.append((span, placeholder, style_from))
        elif open_fields[-1].in_result:
            open_fields[-1].result_runs.append(run)
        else:
            open_fields[-1].instruction += "".join(t.text or "" for t in run.iter(_w("instrText")))
    for runs, placeholder, style_from in replacements:
        runs[0].addprevious(_run(placeholder, style_from))
        for run in runs:
            run.getparent().remove(run)


def _refuse_nested(inner: _Field, outer: _Field, part: str) -> None:
    tokens = _tokens(inner.instruction)
    if tokens and tokens[0].upper() == "MERGEFIELD" and len(tokens) > 1:
        outer_kind = (_tokens(outer.instruction) or ["another field"])[0].upper()
        raise TemplateRejected(
            "file",
            f"the merge field «{tokens[1]}» in the {part} sits inside a Word {outer_kind} field, which is not "
            f"supported; write the condition in the template instead: {{% if {safe_identifier(tokens[1])} %}}"
            "…{% endif %}",
            part=part,
            word_field=tokens[1],
        )


def _placeholder(instruction: str, part: str, conversion: Conversion) -> str | None:
    """The Jinja that stands for a MERGEFIELD instruction; None for the fields Word keeps (PAGE, DATE...)."""
    tokens = _tokens(instruction)
    kind = tokens[0].upper() if tokens else ""
    if kind in _UNSUPPORTED:
        raise TemplateRejected("file", f"{kind} field in the {part}: {_UNSUPPORTED[kind]}", part=part, word_field=kind)
    if kind != "MERGEFIELD" or len(tokens) < 2:
        return None
    word_name = tokens[1]
    variable = safe_identifier(word_name)
    conversion.mapping[word_name] = variable
    expression, before, after = variable, "", ""
    switches = iter(tokens[2:])
    for switch in switches:
        argument = next(switches, "")
        if switch == "\\*" and argument.lower() in _CASE_FILTERS:
            expression += f"|{_CASE_FILTERS[argument.lower()]}"
        elif switch == "\\b":
            before = argument
        elif switch == "\\f":
            after = argument
        elif switch in ("\\@", "\\#"):
            conversion.notes.append(
                f"«{word_name}»: Word's format {argument!r} is not applied; the record's value prints as sent"
            )
    placeholder = f"{{{{ {expression} }}}}"
    if before or after:
        placeholder = f"{{% if {variable} %}}{before}{placeholder}{after}{{% endif %}}"
    return placeholder


def _tokens(instruction: str) -> list[str]:
    return [quoted or bare for quoted, bare in _TOKEN.findall(instruction)]


def _run(text: str, style_from: etree._Element | None) -> etree._Element:
    run = etree.Element(_w("r"))
    properties = style_from.find(_w("rPr")) if style_from is not None else None
    if properties is not None:
        run.append(copy.deepcopy(properties))
    t = etree.SubElement(run, _w("t"))
    t.set(f"{{{_XML_NS}}}space", "preserve")
    t.text = text
    return run


def _parts_of_type(archive: zipfile.ZipFile, type_suffixes: tuple[str, ...]) -> list[str]:
    types = parse_part(archive.read("[Content_Types].xml"), "[Content_Types].xml")
    names = set(archive.namelist())
    return [
        part.get("PartName", "").lstrip("/")
        for part in overrides(types)
        if part.get("ContentType", "").endswith(type_suffixes)
        and part.get("PartName", "").lstrip("/") in names
    ]


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
