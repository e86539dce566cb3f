"""LibreOffice workers: each keeps one soffice alive, converts one document at a time, and is renewed
after a number of conversions, a crash or a timeout (soffice leaks memory and can hang on a bad file)."""

import asyncio
import ctypes.util
import json
import os
import shutil
import signal
import sys
import tempfile
import uuid
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from publipost_logging import get_logger

from .converter import ConversionFailed, ConverterUnavailable
from .metrics import LIBREOFFICE_RESTARTS
from .parent_death import killed_with_parent
from .settings import RenderPdfSettings

BRIDGE = Path(__file__).with_name("uno_bridge.py")
log = get_logger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    soffice_path: str
    uno_python: str
    restart_after: int
    conversion_timeout_s: float
    start_timeout_s: float
    soffice_preload: str = ""

    @classmethod
    def from_settings(cls, settings: RenderPdfSettings) -> "WorkerConfig":
        values = {f.name: getattr(settings, f.name) for f in fields(cls) if f.name != "soffice_preload"}
        return cls(**values, soffice_preload=allocator_library(settings.soffice_allocator))


def allocator_library(name: str) -> str:
    """The library to preload into soffice for the allocator `name`, or "" (glibc's) when none is wanted
    or it is not installed."""
    if not name:
        return ""
    library = ctypes.util.find_library(name)
    if library is None:
        log.warning("allocator not installed: LibreOffice uses glibc's", allocator=name)
        return ""
    return library


class _WorkerBroken(Exception):
    """The worker, not the document, is in trouble: renew it."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class LibreOfficeWorker:
    """One bridge process (system Python + uno) driving one soffice, in its own process group; both die
    with the service, even when it is killed (see uno_bridge)."""

    def __init__(self, index: int, config: WorkerConfig) -> None:
        self.index = index
        self.config = config
        self.conversions = 0
        self.total_conversions = 0
        self.restarts = 0
        self.busy = False
        self._process: asyncio.subprocess.Process | None = None
        self._soffice_pid: int | None = None
        # Its own folder and profile: a second soffice on the same profile hands over to the first and exits.
        self._dir = Path(tempfile.gettempdir()) / f"publipost-render-{os.getpid()}-{index}-{uuid.uuid4().hex[:8]}"

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def describe(self) -> dict[str, Any]:
        return {
            "worker": self.index,
            "alive": self.alive,
            "busy": self.busy,
            "bridge_pid": self._process.pid if self._process else None,
            "soffice_pid": self._soffice_pid,
            "conversions_since_start": self.conversions,
            "conversions": self.total_conversions,
            "restarts": self.restarts,
            "allocator": self.config.soffice_preload or "glibc",
        }

    async def start(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        profile = self._dir / "profile"
        shutil.rmtree(profile, ignore_errors=True)  # a crashed soffice can leave a profile it refuses to reuse
        # soffice's temporary files in the worker's folder: a soffice killed (hung, or renewed) leaves its
        # own behind, and in the system's folder they piled up over a service's life.
        scratch = self._dir / "tmp"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        try:
            self._process = await asyncio.create_subprocess_exec(
                self.config.uno_python,
                str(BRIDGE),
                self.config.soffice_path,
                str(profile),
                self.config.soffice_preload,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=sys.stderr,
                env={**os.environ, "TMPDIR": str(scratch)},
                start_new_session=True,
                preexec_fn=killed_with_parent(),  # the bridge, and so its soffice.bin, dies with the service
            )
            ready = await self._read_line(self.config.start_timeout_s)
        except (OSError, TimeoutError, ConnectionError) as exc:
            await self.stop(kill=True)
            raise ConverterUnavailable(f"LibreOffice worker {self.index} did not start: {exc}") from exc
        self._soffice_pid = ready.get("pid")
        self.conversions = 0
        log.info("libreoffice worker started", worker=self.index, soffice_pid=self._soffice_pid)

    async def stop(self, *, kill: bool = False) -> None:
        """Ask soffice to quit (it removes its temporary files), or kill it when it no longer listens."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        if kill:
            self._kill(process)
            await process.wait()
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            await asyncio.wait_for(process.wait(), timeout=10)
        except (ProcessLookupError, TimeoutError):
            self._kill(process)
            await process.wait()

    async def restart(self, reason: str, message: str) -> None:
        log.info("libreoffice worker renewed", worker=self.index, reason=message, conversions=self.conversions)
        # A hung or crashed soffice does not answer a polite request to quit.
        await self.stop(kill=reason != "conversions")
        self.restarts += 1
        LIBREOFFICE_RESTARTS.labels(reason).inc()
        await self.start()

    async def convert(self, docx: bytes, *, retry: bool = True, pdfa: bool = False) -> bytes:
        """Convert one document; a crash or timeout renews the worker and, with `retry`, tries once more."""
        self.busy = True
        try:
            attempts = 2 if retry else 1
            for attempt in range(1, attempts + 1):
                if not self.alive:
                    await self.restart("not_running", "not running")
                try:
                    pdf = await self._convert_once(docx, pdfa)
                except _WorkerBroken as exc:
                    await self.restart(exc.reason, str(exc))
                    if attempt == attempts:
                        tries = "twice " if attempts == 2 else ""
                        raise ConversionFailed(
                            f"LibreOffice failed {tries}on this document: {exc}", exc.reason
                        ) from exc
                    continue
                self.conversions += 1
                self.total_conversions += 1
                if self.conversions >= self.config.restart_after:
                    await self.restart("conversions", f"{self.conversions} conversions")
                return pdf
            raise AssertionError("unreachable")
        finally:
            self.busy = False

    async def _convert_once(self, docx: bytes, pdfa: bool) -> bytes:
        name = uuid.uuid4().hex
        source, target = self._dir / f"{name}.docx", self._dir / f"{name}.pdf"
        source.write_bytes(docx)
        try:
            assert self._process is not None and self._process.stdin is not None
            request = json.dumps({"source": str(source), "target": str(target), "pdfa": pdfa}) + "\n"
            try:
                self._process.stdin.write(request.encode())
                await self._process.stdin.drain()
                reply = await self._read_line(self.config.conversion_timeout_s)
            except TimeoutError as exc:
                raise _WorkerBroken(f"no answer within {self.config.conversion_timeout_s:g}s", "timeout") from exc
            except (ConnectionError, BrokenPipeError) as exc:
                raise _WorkerBroken("LibreOffice stopped", "crashed") from exc
            if reply.get("fatal"):
                raise _WorkerBroken(reply.get("error", "LibreOffice crashed"), "crashed")
            if not reply.get("ok"):
                raise ConversionFailed(reply.get("error") or "LibreOffice could not convert the document")
            return target.read_bytes()
        finally:
            source.unlink(missing_ok=True)
            target.unlink(missing_ok=True)

    async def _read_line(self, timeout_s: float) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), timeout=timeout_s)
        if not line:
            raise ConnectionError("the LibreOffice bridge exited")
        return json.loads(line)

    @staticmethod
    def _kill(process: asyncio.subprocess.Process) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


class LibreOfficePool:
    """The local backend: a fixed set of workers; a conversion waits for an idle one, so load never
    exceeds the workers."""

    name = "libreoffice"

    def __init__(self, size: int, config: WorkerConfig) -> None:
        self.workers = [LibreOfficeWorker(index, config) for index in range(size)]
        self._idle: asyncio.Queue[LibreOfficeWorker] = asyncio.Queue()

    async def start(self) -> None:
        for worker in self.workers:
            await worker.start()
            self._idle.put_nowait(worker)

    async def stop(self) -> None:
        for worker in self.workers:
            await worker.stop()
            worker.close()

    async def convert(self, docx: bytes, *, retry: bool = True, pdfa: bool = False) -> bytes:
        worker = await self._idle.get()
        try:
            return await worker.convert(docx, retry=retry, pdfa=pdfa)
        finally:
            self._idle.put_nowait(worker)

    async def healthy(self) -> bool:
        """Ready while every worker runs or is being renewed by a conversion in progress."""
        return all(worker.alive or worker.busy for worker in self.workers)

    def describe(self) -> list[dict[str, Any]]:
        return [worker.describe() for worker in self.workers]
