"""Processes that render documents, each under a memory limit: a record whose template fills memory fails alone.

The sandbox (rendering.py) refuses the plain ways to build a huge value (`'a' * 10**9`, range() past its
bound) and stops a document at its byte budget as it is produced. It cannot see every way to fill memory:
a string doubled in a loop with `~`, a structure whose text is exponentially long, a `{% set %}` block
holding a loop's output. The operating system's limit on a process's address space (RLIMIT_AS) does.
So the service renders in worker processes: a record that runs out of memory fails with the reason and
the worker goes on; a worker still busy at the render timeout is killed, and started again for the next
record.

A worker is a long-lived `python -m publipost_merge.render_workers`, started when first needed. It keeps
the last templates it was sent, by content hash, compiled as rendering.py compiles them, so a render costs
one round trip of the record and its DOCX through a pipe. Replies come back as raw bytes, never unpickled:
the parent trusts nothing a template may have touched.
"""

import asyncio
import hashlib
import os
import resource
import signal
import subprocess
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Literal

from publipost_logging import configure_logging, get_logger

from .rendering import RenderFailed, render_docx

# Templates a worker keeps as sent (its compiled-template cache keeps more): a mailing uses one.
TEMPLATES_KEPT = 8
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0

_DONE, _FAILED, _UNKNOWN_TEMPLATE, _READY = b"D", b"F", b"U", b"R"

log = get_logger(__name__)


@dataclass(frozen=True)
class RenderLimits:
    timeout_s: float
    memory_bytes: int
    max_document_bytes: int
    renderer: Literal["compiled", "docxtpl"] = "compiled"  # PUBLIPOST_RENDERER: docxtpl renders every record


class RenderWorkers:
    """`count` worker processes, each rendering one record at a time; a caller waits for a free one."""

    def __init__(self, count: int, limits: RenderLimits) -> None:
        self._slots = [_Slot(limits) for _ in range(count)]
        # Last in, first out: one mailing at a time keeps to one warm worker, which has its template compiled;
        # a second worker starts only when two records are rendered at once.
        self._free: asyncio.LifoQueue[_Slot] = asyncio.LifoQueue()
        for slot in self._slots:
            self._free.put_nowait(slot)

    async def render(self, template: bytes, context: dict[str, Any]) -> bytes:
        """The DOCX of one record. RenderFailed names why a record cannot be rendered (budget, memory, time);
        a worker that cannot be started raises RuntimeError, which is no fault of the record."""
        key = hashlib.sha256(template).digest()
        slot = await self._free.get()
        try:
            return await asyncio.to_thread(slot.render, key, template, context)
        finally:
            self._free.put_nowait(slot)

    def pids(self) -> list[int]:
        """The worker processes running now: they start when first needed."""
        return [slot.pid for slot in self._slots if slot.pid is not None]

    async def close(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(slot.stop) for slot in self._slots))


class _Slot:
    """One place in the pool: its worker process, started on first use and again after it stopped."""

    def __init__(self, limits: RenderLimits) -> None:
        self._limits = limits
        self._worker: _Worker | None = None
        self._lock = threading.Lock()

    def render(self, key: bytes, template: bytes, context: dict[str, Any]) -> bytes:
        with self._lock:
            if self._worker is None or not self._worker.alive:
                self._worker = _Worker.start(self._limits)
            return self._worker.render(key, template, context)

    @property
    def pid(self) -> int | None:
        worker = self._worker
        return worker.pid if worker is not None and worker.alive else None

    def stop(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.stop()
                self._worker = None


class _Worker:
    """The parent's side of one worker process: a pipe each way, and the process to kill when it overruns."""

    def __init__(
        self, process: subprocess.Popen[bytes], requests: Connection, replies: Connection, limits: RenderLimits
    ) -> None:
        self._process = process
        self._requests = requests
        self._replies = replies
        self._limits = limits

    @classmethod
    def start(cls, limits: RenderLimits) -> "_Worker":
        child_reads, parent_writes = os.pipe()
        parent_reads, child_writes = os.pipe()
        command = [
            sys.executable, "-m", __name__, str(child_reads), str(child_writes),
            str(limits.memory_bytes), str(limits.max_document_bytes), limits.renderer,
        ]
        try:
            process = subprocess.Popen(command, pass_fds=(child_reads, child_writes), stdin=subprocess.DEVNULL)
        except OSError:
            os.close(parent_reads)
            os.close(parent_writes)
            raise
        finally:
            os.close(child_reads)
            os.close(child_writes)
        requests, replies = Connection(parent_writes, readable=False), Connection(parent_reads, writable=False)
        worker = cls(process, requests, replies, limits)
        try:
            ready = worker._replies.poll(START_TIMEOUT_S) and worker._replies.recv_bytes() == _READY
        except (OSError, EOFError):
            ready = False
        if not ready:
            worker.stop(kill=True)
            raise RuntimeError(f"a render worker did not start within {START_TIMEOUT_S:g}s ({worker._exit_status()})")
        log.info("render worker started", pid=process.pid, memory_bytes=limits.memory_bytes)
        return worker

    @property
    def alive(self) -> bool:
        return self._process.poll() is None and not self._requests.closed

    @property
    def pid(self) -> int:
        return self._process.pid

    def render(self, key: bytes, template: bytes, context: dict[str, Any]) -> bytes:
        reply = self._ask((key, None, context))
        if reply[:1] == _UNKNOWN_TEMPLATE:
            reply = self._ask((key, template, context))
        if reply[:1] == _DONE:
            return reply[1:]
        raise RenderFailed(reply[1:].decode("utf-8", "replace"))

    def _ask(self, request: tuple[bytes, bytes | None, dict[str, Any]]) -> bytes:
        timeout_s = self._limits.timeout_s
        try:
            self._requests.send(request)
            if self._replies.poll(timeout_s):
                return self._replies.recv_bytes()
        except (OSError, EOFError):
            self.stop(kill=True)
            raise RenderFailed(f"the render process stopped during this document ({self._exit_status()})") from None
        self.stop(kill=True)
        log.warning("render worker killed past the render timeout", pid=self._process.pid, timeout_s=timeout_s)
        raise RenderFailed(f"rendering took over {timeout_s:g}s: the template loops too long")

    def stop(self, *, kill: bool = False) -> None:
        """Closing its pipe ends a worker between documents; one busy past its time, or that does not end, is killed."""
        if kill:
            self._process.kill()
        for connection in (self._requests, self._replies):
            if not connection.closed:
                connection.close()
        try:
            self._process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _exit_status(self) -> str:
        code = self._process.poll()
        if code is None:
            return "still running"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"


# --- the worker process -----------------------------------------------------------------------------


def serve(requests: Connection, replies: Connection, memory_bytes: int, max_document_bytes: int, renderer: str) -> None:
    """Render records until the parent closes the pipe, within `memory_bytes` of address space."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent stops us
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    templates: OrderedDict[bytes, bytes] = OrderedDict()
    replies.send_bytes(_READY)
    while True:
        try:
            key, template, context = requests.recv()
        except EOFError:
            return
        if template is not None:
            templates[key] = template
            while len(templates) > TEMPLATES_KEPT:
                templates.popitem(last=False)
        elif key not in templates:
            replies.send_bytes(_UNKNOWN_TEMPLATE)
            continue
        templates.move_to_end(key)
        replies.send_bytes(_render(templates[key], context, memory_bytes, max_document_bytes, renderer == "compiled"))


def _render(
    template: bytes, context: dict[str, Any], memory_bytes: int, max_document_bytes: int, compiled: bool
) -> bytes:
    try:
        return _DONE + render_docx(template, context, max_document_bytes=max_document_bytes, compiled=compiled)
    except RenderFailed as exc:
        return _FAILED + str(exc).encode()
    except MemoryError:
        return _FAILED + (
            f"the document needs more memory than the {memory_bytes} bytes a render may use "
            "(PUBLIPOST_RENDER_MEMORY_BYTES): its template builds too large a value"
        ).encode()


if __name__ == "__main__":
    configure_logging("merge", os.environ.get("PUBLIPOST_LOG_LEVEL", "INFO"))
    reads, writes, memory, max_document = (int(argument) for argument in sys.argv[1:5])
    serve(Connection(reads, writable=False), Connection(writes, readable=False), memory, max_document, sys.argv[5])
