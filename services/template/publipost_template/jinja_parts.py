"""The Jinja in each part of a DOCX, read the way docxtpl renders it: does it parse, does it stay within
its data, which fields does it use. Errors say where a Word user would look: the part (body, header,
footer), the table cell, and the text of the paragraph around the tag.
"""

import html
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

from docxtpl import DocxTemplate
from jinja2 import TemplateSyntaxError, meta, nodes, pass_context
from jinja2.sandbox import SandboxedEnvironment

from .domain import TemplateRejected
from .package import part_label

_FOOTNOTES_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.footnotes+xml"
_RENDERED_PROPERTIES = ("author", "comments", "identifier", "language", "subject", "title")  # as docxtpl renders
_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_TABLE_MARKS = re.compile(r"<(/?)w:(tbl|tr|tc)[ >]")
_BLOCK_TAGS = {"for", "if", "macro", "call", "filter", "with", "block", "raw", "autoescape", "trans"}
# Beyond dunder names, the attributes that lead from a function or a generator to its module's globals.
_INTERNAL_ATTRIBUTES = {
    "mro", "func_globals", "func_code", "f_globals", "f_locals", "f_builtins", "f_back", "f_code",
    "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "tb_frame", "tb_next", "im_func", "im_self",
}
_FORMAT_WALK = re.compile(r"\{[^{}]*[.\[]\s*_")
# The longest string or list a template may spell out by repeating a literal: '-' * 80 draws a line, nothing
# in a letter needs 100,000 characters of one literal. A repetition by a record's value is bounded when merge renders.
MAX_LITERAL_REPETITION = 100_000
# Sizes are reckoned up to here and no further: a chain of large numbers never costs a big-number product.
_SIZE_CEILING = 10**18
# There is no other template to reach: a template is one document.
_OTHER_TEMPLATES = {
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from … import %}",
    nodes.Extends: "{% extends %}",
}


@dataclass(frozen=True)
class _Source:
    part: str
    text: str
    is_xml: bool = True

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")


@pass_context
def _never_called(*_: Any, **__: Any) -> NoReturn:
    raise AssertionError("an uploaded template is read, never rendered")


class _InertEnvironment(SandboxedEnvironment):
    """Parses a template and lists its variables without evaluating any of it.

    meta.find_undeclared_variables runs Jinja's code generator, and the code generator folds constant
    expressions by computing them: `{{ 'a' * 100000 * 100000 }}` built ten gigabytes during an upload check.
    Jinja folds no operator that a sandbox intercepts and no filter or test that takes the context, so here
    every operator is intercepted and every filter and test takes the context; none of them is ever called.
    """

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})

    def __init__(self) -> None:
        super().__init__(optimized=False)
        self.filters = dict.fromkeys(self.filters, _never_called)
        self.tests = dict.fromkeys(self.tests, _never_called)


def fields_used(docx: bytes) -> set[str]:
    """The variables the template reads, across every part docxtpl renders; refuses bad or unsafe Jinja.

    The template is parsed and walked, never evaluated (_InertEnvironment).
    """
    env = _InertEnvironment()
    used: set[str] = set()
    for source in _sources(docx):
        try:
            tree = env.parse(source.text)
        except TemplateSyntaxError as exc:
            raise _syntax_error(env, source, exc) from exc
        _refuse_internals(tree, source)
        _refuse_huge_repetitions(tree, source)
        used |= meta.find_undeclared_variables(tree)
    return used


def _sources(docx: bytes) -> Iterator[_Source]:
    template = DocxTemplate(io.BytesIO(docx))
    template.init_docx()
    yield _Source("body", _one_paragraph_a_line(template.patch_xml(template.get_xml())))
    for uri in (template.HEADER_URI, template.FOOTER_URI):
        for _, part in template.get_headers_footers(uri):
            xml = template.patch_xml(template.get_part_xml(part))
            yield _Source(part_label(str(part.partname)), _one_paragraph_a_line(xml))
    for part in template.docx.part.package.parts:
        if part.content_type == _FOOTNOTES_TYPE:
            xml = template.patch_xml(part.blob.decode("utf-8"))
            yield _Source(part_label(str(part.partname)), _one_paragraph_a_line(xml))
    for name in _RENDERED_PROPERTIES:
        value = getattr(template.docx.core_properties, name)
        if value:
            yield _Source(f"document properties ({name})", value, is_xml=False)


def _one_paragraph_a_line(xml: str) -> str:
    """docxtpl starts each paragraph on a new line before rendering: a Jinja line number is a paragraph."""
    return re.sub(r"<w:p([ >])", r"\n<w:p\1", xml)


# --- where an error is ----------------------------------------------------------------------------


def _plain(xml: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", xml)).strip()


def _location(source: _Source, lineno: int) -> dict[str, str]:
    """The part, the table cell if any, and the paragraph's text, for the paragraph on line `lineno`."""
    lines = source.lines
    line = lines[min(max(lineno, 1), len(lines)) - 1]
    if not source.is_xml:
        return {"part": source.part, "text": _shorten(source.text)}
    where = {"part": source.part, "text": _shorten(_plain(line))}
    cell = _table_cell("\n".join(lines[: lineno - 1]))
    if cell:
        where["table_cell"] = cell
    return where


def _table_cell(xml_before: str) -> str | None:
    """"table 2, row 3, cell 1" when the paragraph after `xml_before` is inside a table."""
    tables_seen = 0
    open_tables: list[list[int]] = []  # per open table: its number, current row, current cell
    for closing, kind in _TABLE_MARKS.findall(xml_before):
        if kind == "tbl" and not closing:
            tables_seen += 1
            open_tables.append([tables_seen, 0, 0])
        elif kind == "tbl" and open_tables:
            open_tables.pop()
        elif kind == "tr" and not closing and open_tables:
            open_tables[-1][1:] = [open_tables[-1][1] + 1, 0]
        elif kind == "tc" and not closing and open_tables:
            open_tables[-1][2] += 1
    if not open_tables:
        return None
    table, row, cell = open_tables[-1]
    return f"table {table}, row {row}, cell {cell}"


def _shorten(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(where: dict[str, str]) -> str:
    cell = f", {where['table_cell']}" if "table_cell" in where else ""
    return f"in the {where['part']}{cell}, text “{where['text']}”"


def _syntax_error(env: SandboxedEnvironment, source: _Source, exc: TemplateSyntaxError) -> TemplateRejected:
    lineno = exc.lineno or 1
    tag, problem = None, "template syntax error"
    if "unexpected end of template" in exc.message.lower():
        opening = _unclosed_block(source.text)
        if opening is not None:
            tag, lineno = _tag_text(opening[0], source.is_xml), opening[1]
            problem = f"{tag} is never closed"
    else:
        tag = _culprit_tag(env, source, lineno)
        if tag:
            problem = f"template syntax error at {tag}"
    where = _location(source, lineno)
    return TemplateRejected(
        "file",
        f"{problem} {_describe(where)}: {exc.message}",
        **where,
        tag=tag,
        error=exc.message,
    )


def _tag_text(raw: str, is_xml: bool) -> str:
    return _plain(raw) if is_xml else raw


def _culprit_tag(env: SandboxedEnvironment, source: _Source, lineno: int) -> str | None:
    """The first tag of the failing paragraph whose text, cut right after it, fails there for its own sake."""
    lines = source.lines
    if lineno > len(lines):
        return None
    head = "".join(f"{line}\n" for line in lines[: lineno - 1])
    line = lines[lineno - 1]
    for match in _TAG.finditer(line):
        try:
            env.parse(head + line[: match.end()])
        except TemplateSyntaxError as exc:
            if exc.lineno == lineno and "unexpected end of template" not in exc.message.lower():
                return _tag_text(match.group(), source.is_xml)
    return None


def _unclosed_block(text: str) -> tuple[str, int] | None:
    """The innermost block tag that is never closed, and its line."""
    stack: list[tuple[str, re.Match[str]]] = []
    for match in _TAG.finditer(text):
        words = match.group()[2:-2].strip("-+ \n").split()
        if not match.group().startswith("{%") or not words:
            continue
        word = words[0]
        if word in _BLOCK_TAGS or (word == "set" and "=" not in match.group()):
            stack.append((word, match))
        elif word.startswith("end") and stack and stack[-1][0] == word[3:]:
            stack.pop()
    if not stack:
        return None
    match = stack[-1][1]
    return match.group(), text.count("\n", 0, match.start()) + 1


# --- what a template may touch --------------------------------------------------------------------


def _refuse_internals(tree: nodes.Template, source: _Source) -> None:
    """Refuse, at upload and saying where, attribute walks to Python internals (__class__, __globals__,
    mro...), other templates, and ** (a way to build numbers that exhaust memory).

    merge's sandbox refuses the walks again at render time; this tells the person uploading, once.
    """
    found: list[tuple[str, int]] = []
    for node in tree.find_all(nodes.Node):
        reason = _internal_access(node)
        if reason:
            found.append((reason, node.lineno))
    if found:
        reasons = ", ".join(dict.fromkeys(reason for reason, _ in found))
        where = _location(source, found[0][1])
        raise TemplateRejected(
            "file",
            f"the template reaches beyond its data ({reasons}) {_describe(where)}; a template may only read its fields",
            **where,
            expressions=list(dict.fromkeys(reason for reason, _ in found)),
        )


def _is_internal(name: object) -> bool:
    return isinstance(name, str) and (name.startswith("_") or name in _INTERNAL_ATTRIBUTES)


def _internal_access(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Getattr) and _is_internal(node.attr):
        return f".{node.attr}"
    if isinstance(node, nodes.Getitem):
        if isinstance(node.arg, nodes.Const) and _is_internal(node.arg.value):
            return f"[{node.arg.value!r}]"
        if not isinstance(node.arg, nodes.Const) and any(
            isinstance(c.value, str) for c in node.arg.find_all(nodes.Const)
        ):
            return "[a key built from strings]"
    if isinstance(node, nodes.Name) and node.name.startswith("_"):
        return node.name
    if isinstance(node, nodes.Filter) and node.name == "attr":
        argument = node.args[0] if node.args else None
        if not isinstance(argument, nodes.Const):
            return "|attr(a computed name)"
        if _is_internal(argument.value):
            return f"|attr({argument.value!r})"
    is_text = isinstance(node, nodes.Const) and isinstance(node.value, str)
    if is_text and ("__" in node.value or _FORMAT_WALK.search(node.value)):
        return repr(_shorten(node.value, 40))
    if isinstance(node, (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        return _OTHER_TEMPLATES[type(node)]
    if isinstance(node, nodes.Pow):
        return "the ** operator"
    return None


# --- what a template may build --------------------------------------------------------------------


def _refuse_huge_repetitions(tree: nodes.Template, source: _Source) -> None:
    """Refuse, saying where, a literal repeated past MAX_LITERAL_REPETITION (`'a' * 1000000000`): the size
    is read from the expression, nothing is computed."""
    for node in tree.find_all(nodes.Mul):
        size = _literal_size(node)
        if size is None or size <= MAX_LITERAL_REPETITION:
            continue
        where = _location(source, node.lineno)
        amount = str(size) if size < _SIZE_CEILING else f"over {_SIZE_CEILING}"
        raise TemplateRejected(
            "file",
            f"the template repeats a literal into {amount} characters or items {_describe(where)}; "
            f"at most {MAX_LITERAL_REPETITION}",
            **where,
            size=size,
            limit=MAX_LITERAL_REPETITION,
        )


def _literal_size(node: nodes.Expr) -> int | None:
    """The length of a string or list literal, repeated by constant numbers: 'ab' * 3 * 2 → 12; else None."""
    if isinstance(node, nodes.Const) and isinstance(node.value, (str, tuple)):
        return len(node.value)
    if isinstance(node, (nodes.List, nodes.Tuple)):
        return len(node.items)
    if isinstance(node, nodes.Mul):
        for sequence, count in ((node.left, node.right), (node.right, node.left)):
            size, times = _literal_size(sequence), _constant_count(count)
            if size is not None and times is not None:
                return min(size * max(times, 0), _SIZE_CEILING)
    return None


def _constant_count(node: nodes.Expr) -> int | None:
    """An integer spelled in the template, or a product of them: 100000 * 100000 → 10000000000; else None."""
    if isinstance(node, nodes.Const) and type(node.value) is int:
        return min(node.value, _SIZE_CEILING)
    if isinstance(node, nodes.Mul):
        left, right = _constant_count(node.left), _constant_count(node.right)
        if left is not None and right is not None:
            return min(left * right, _SIZE_CEILING)
    return None
