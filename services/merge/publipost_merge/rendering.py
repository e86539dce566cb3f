"""DOCX rendering: one document per record, bounded in loops and time.

Each template is compiled once and kept (fast_rendering.py, docs/merge-rendering.md);
plain docxtpl stays the reference and renders what the compiled path leaves to it.
"""

import asyncio
import ctypes
import io
import threading
from typing import Any

from docxtpl import DocxTemplate
from jinja2.sandbox import SandboxedEnvironment

from .fast_rendering import CompiledTemplate, CompiledTemplateCache

MAX_RANGE = 10_000
# A compiled template holds its deflated parts (about the size of the DOCX)
# and its Jinja code; a mailing uses one, a few mailings at once use a few.
COMPILED_TEMPLATES = 32


class RenderFailed(ValueError):
    """This record could not be rendered; it fails alone."""


class _RenderTimeout(BaseException):
    """Raised into a rendering thread past its deadline; not an Exception, so no template error handler takes it."""


def _bounded_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise RenderFailed(f"range() of {len(result)} items: a template may loop at most {MAX_RANGE} times")
    return result


# Templates read their data and nothing else: the sandbox refuses attribute
# walks to Python internals (__class__, __globals__ ...). Autoescaped, as
# docxtpl sets it on render(autoescape=True), so that compiled templates escape too.
_JINJA = SandboxedEnvironment(autoescape=True)
_JINJA.globals["range"] = _bounded_range
_COMPILED = CompiledTemplateCache(_JINJA, capacity=COMPILED_TEMPLATES)


def render_docx(template: bytes, context: dict[str, Any]) -> bytes:
    """The DOCX of one record: through the compiled template, or plain docxtpl for what it leaves aside."""
    compiled = _COMPILED.get(template)
    if isinstance(compiled, CompiledTemplate) and compiled.accepts(context):
        try:
            return compiled.render(context)
        except Exception as exc:
            raise RenderFailed(f"{type(exc).__name__}: {exc}") from exc
    return render_docx_reference(template, context)


def render_docx_reference(template: bytes, context: dict[str, Any]) -> bytes:
    """Plain docxtpl: load, render, save. The reference the compiled path is measured and tested against."""
    document = DocxTemplate(io.BytesIO(template))
    try:
        document.render(context, jinja_env=_JINJA, autoescape=True)
    except Exception as exc:
        raise RenderFailed(f"{type(exc).__name__}: {exc}") from exc
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


async def render_within(timeout_s: float, template: bytes, context: dict[str, Any]) -> bytes:
    """render_docx on a worker thread, stopped after `timeout_s` (a template looping without end).

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
