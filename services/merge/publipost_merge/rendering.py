"""DOCX rendering and the combined print file."""

import asyncio
import ctypes
import io
import threading
from collections.abc import Iterable
from typing import Any

from docxtpl import DocxTemplate
from jinja2.sandbox import SandboxedEnvironment
from pypdf import PdfReader, PdfWriter

MAX_RANGE = 10_000


class RenderFailed(ValueError):
    """This record could not be rendered; it fails alone."""


class _RenderTimeout(Exception):
    pass


def _bounded_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise RenderFailed(f"range() of {len(result)} items: a template may loop at most {MAX_RANGE} times")
    return result


# Templates read their data and nothing else: the sandbox refuses attribute
# walks to Python internals (__class__, __globals__ ...).
_JINJA = SandboxedEnvironment()
_JINJA.globals["range"] = _bounded_range


def render_docx(template: bytes, context: dict[str, Any]) -> bytes:
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


def combine_pdfs(pdfs: Iterable[bytes]) -> tuple[bytes, int]:
    """All documents one after the other, print-ready. Returns the PDF and its page count."""
    writer = PdfWriter()
    for pdf in pdfs:
        writer.append(PdfReader(io.BytesIO(pdf)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue(), len(writer.pages)
