"""DOCX rendering: one document per record, bounded in loops, size and time.

Each template is compiled once and kept (fast_rendering.py, docs/merge-rendering.md);
plain docxtpl stays the reference and renders what the compiled path leaves to it.
The service renders in worker processes under a memory limit (render_workers.py); the
bounds here are what the sandbox can check itself, with an error saying which.
"""

import asyncio
import ctypes
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from docxtpl import DocxTemplate
from jinja2 import Template, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from .fast_rendering import CompiledTemplate, CompiledTemplateCache
from .settings import MAX_DOCUMENT_BYTES

MAX_RANGE = 10_000
# A compiled template holds its deflated parts (about the size of the DOCX)
# and its Jinja code; a mailing uses one, a few mailings at once use a few.
COMPILED_TEMPLATES = 32
_SEQUENCES = (str, list, tuple)


class RenderFailed(ValueError):
    """This record could not be rendered; it fails alone."""


class OverBudget(RenderFailed):
    """The record's document, or a value its template builds, is over the document budget."""


class _RenderTimeout(BaseException):
    """Raised into a rendering thread past its deadline; not an Exception, so no template error handler takes it."""


def _bounded_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise RenderFailed(f"range() of {len(result)} items: a template may loop at most {MAX_RANGE} times")
    return result


class _DocumentBudget:
    """The characters of XML one record's document may take, counted as Jinja produces them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def count(self, chunks: Iterator[str]) -> Iterator[str]:
        for chunk in chunks:
            self.used += len(chunk)
            if self.used > self.limit:
                raise OverBudget(
                    f"the document is over the budget of {self.limit} bytes of rendered XML a record may take "
                    "(PUBLIPOST_MAX_DOCUMENT_BYTES): its template loops too long or repeats too much"
                )
            yield chunk

    def check_value(self, size: int, operator: str) -> None:
        if size > self.limit:
            raise OverBudget(
                f"'{operator}' would build a value of {size} characters or items, over the budget of "
                f"{self.limit} bytes a whole document may take (PUBLIPOST_MAX_DOCUMENT_BYTES)"
            )


# The budget of the document being rendered on this thread (a context variable: threads do not share it).
_BUDGET: ContextVar[_DocumentBudget | None] = ContextVar("document_budget", default=None)


@contextmanager
def _document_budget(limit: int) -> Iterator[_DocumentBudget]:
    budget = _DocumentBudget(limit)
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


class _MeteredTemplate(Template):
    """Jinja's Template.render, its output counted against the document's budget as it is produced:
    two nested loops of 10,000 stop at the budget instead of building 10^8 characters first."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        budget = _BUDGET.get()
        if budget is None:
            return super().render(*args, **kwargs)
        context = self.new_context(dict(*args, **kwargs))
        try:
            return self.environment.concat(budget.count(self.root_render_func(context)))  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - as Template.render: re-raised, its traceback pointing into the template
            self.environment.handle_exception()


@pass_context
def _finalize(_: Context, value: Any) -> Any:
    """Returns the value as it is. Jinja folds no output expression when finalize takes the context."""
    return value


class _BoundedSandbox(SandboxedEnvironment):
    """The sandbox: a template reads its data and nothing else, in bounded loops and values.

    Jinja's compiler computes constant expressions it can fold, at compile time, outside any budget
    (`{{ 'a' * 100000 * 100000 }}` is ten gigabytes): this environment folds none. The optimizer is
    off, the finalize function takes the context (no output is folded), and `*` and `+`, which build
    strings and lists, are intercepted (an intercepted operator is never folded) and checked against
    the document budget before they run.
    """

    template_class = _MeteredTemplate
    intercepted_binops = frozenset({"*", "+"})

    def __init__(self) -> None:
        # Autoescaped, as docxtpl sets it on render(autoescape=True), so that compiled templates escape too.
        super().__init__(autoescape=True, optimized=False, finalize=_finalize)
        self.globals["range"] = _bounded_range

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            if isinstance(left, _SEQUENCES) and isinstance(right, int):
                _current_budget().check_value(len(left) * right, operator)
            elif isinstance(right, _SEQUENCES) and isinstance(left, int):
                _current_budget().check_value(len(right) * left, operator)
        elif isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
            _current_budget().check_value(len(left) + len(right), operator)
        return self.binop_table[operator](left, right)


def _current_budget() -> _DocumentBudget:
    return _BUDGET.get() or _DocumentBudget(MAX_DOCUMENT_BYTES)


_JINJA = _BoundedSandbox()
_COMPILED = CompiledTemplateCache(_JINJA, capacity=COMPILED_TEMPLATES)


def render_docx(
    template: bytes, context: dict[str, Any], *, max_document_bytes: int = MAX_DOCUMENT_BYTES, compiled: bool = True
) -> bytes:
    """The DOCX of one record: through the compiled template, or plain docxtpl for what it leaves aside
    (for every record when not `compiled`: PUBLIPOST_RENDERER=docxtpl, docs/library-parity.md).

    Raises RenderFailed (OverBudget past `max_document_bytes`); lets MemoryError through, for the caller
    that set the memory limit to name it.
    """
    if not compiled:
        return render_docx_reference(template, context, max_document_bytes=max_document_bytes)
    prepared = _COMPILED.get(template)  # compiled outside the record's budget: it renders the fixed parts once
    if isinstance(prepared, CompiledTemplate) and prepared.accepts(context):
        with _document_budget(max_document_bytes):
            try:
                return prepared.render(context)
            except (RenderFailed, MemoryError):
                raise
            except Exception as exc:
                raise RenderFailed(f"{type(exc).__name__}: {exc}") from exc
    return render_docx_reference(template, context, max_document_bytes=max_document_bytes)


def render_docx_reference(
    template: bytes, context: dict[str, Any], *, max_document_bytes: int = MAX_DOCUMENT_BYTES
) -> bytes:
    """Plain docxtpl: load, render, save. The reference the compiled path is measured and tested against."""
    document = DocxTemplate(io.BytesIO(template))
    with _document_budget(max_document_bytes):
        try:
            document.render(context, jinja_env=_JINJA, autoescape=True)
        except (RenderFailed, MemoryError):
            raise
        except Exception as exc:
            raise RenderFailed(f"{type(exc).__name__}: {exc}") from exc
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


async def render_within(timeout_s: float, template: bytes, context: dict[str, Any]) -> bytes:
    """render_docx on a thread of this process, stopped after `timeout_s` (a template looping without end).

    In-process, so without a memory limit: the service renders through RenderWorkers (render_workers.py).

    A thread cannot be killed, but the interpreter can raise an exception in it
    at its next bytecode, which is where a runaway Jinja loop spends its time.
    """
    guard = threading.Lock()
    state: dict[str, Any] = {"thread": None, "done": False}

    def work() -> bytes:
        with guard:
            state["thread"] = threading.get_ident()
        try:
            return render_docx(template, context)
        finally:
            with guard:
                state["done"] = True

    future = asyncio.get_running_loop().run_in_executor(None, work)
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout_s)
    except TimeoutError:
        with guard:
            if not state["done"] and state["thread"] is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(state["thread"]), ctypes.py_object(_RenderTimeout)
                )
        try:
            await future
        except (RenderFailed, _RenderTimeout):
            pass
        raise RenderFailed(f"rendering took over {timeout_s:g}s: the template loops too long") from None
