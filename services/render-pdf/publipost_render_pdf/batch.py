"""Converting a chunk: documents that share their styles go through the backend as one combined
document and are cut back by page map; anything that goes wrong there is retried one document at a
time, which finds the document at fault and lets the others through."""

import asyncio
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from publipost_logging import get_logger

from .combine import Combiner, NotCombinable, combine_docx, combine_key
from .converter import ConversionFailed, Converter, ConverterUnavailable
from .domain import PageMapMismatch, UnreadablePdf, batches, page_count
from .external_links import ExternalResource, without_external_resources
from .metrics import CONVERSION_FAILURES, CONVERSION_SECONDS, CONVERSIONS
from .pdf_split import Splitter, split_pdf_by_destinations

log = get_logger(__name__)
_FAILURE_REASONS = {NotCombinable: "not_combinable", PageMapMismatch: "page_map", UnreadablePdf: "unreadable"}


@dataclass(frozen=True)
class Converted:
    """One document's outcome: its PDF and pages, or why there is none."""

    pdf: bytes | None = None
    pages: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Prepared:
    """A chunk's documents and, for each, what it must share with others to go in one run (None: alone);
    `refused`: the positions of those not to convert, and why."""

    documents: Sequence[bytes]
    keys: Sequence[Hashable | None]
    refused: Mapping[int, str] = field(default_factory=dict)


async def prepare(documents: Sequence[bytes], scope: str) -> Prepared:
    """The documents without what they link to outside themselves, with their combine keys, worked out off
    the event loop; `scope` (the tenant) keeps documents of different scopes out of one run."""
    prepared = await asyncio.to_thread(lambda: [_prepare_one(docx) for docx in documents])
    return Prepared(
        [docx for docx, _, _ in prepared],
        [None if key is None else (scope, key) for _, key, _ in prepared],
        {position: error for position, (_, _, error) in enumerate(prepared) if error is not None},
    )


def _prepare_one(docx: bytes) -> tuple[bytes, Hashable | None, str | None]:
    try:
        docx = without_external_resources(docx)  # no backend may fetch what a document links to
    except ExternalResource as exc:
        return docx, None, str(exc)
    return docx, combine_key(docx), None


async def convert_documents(prepared: Prepared, runs: "CombinedRuns") -> list[Converted]:
    """Each document's outcome."""
    documents = prepared.documents
    results: list[Converted] = [Converted()] * len(documents)
    for position, error in prepared.refused.items():
        results[position] = Converted(error=error)
    for group in batches(prepared.keys, runs.max_documents):
        if group[0] in prepared.refused:  # alone in its group: its key is None
            continue
        group_documents = [documents[position] for position in group]
        key = prepared.keys[group[0]]
        outcomes = await runs.convert(key, group_documents) if key is not None else None
        if outcomes is None:
            outcomes = [await _convert_alone(docx, runs.converter) for docx in group_documents]
        for position, outcome in zip(group, outcomes, strict=True):
            results[position] = outcome
    return results


@dataclass(frozen=True)
class _Run:
    """What a combined run gives each group in it: the run's PDF cut per document (None if the run
    failed), shared by the run's groups, and where the group's documents are in it."""

    parts: "asyncio.Future[list[tuple[bytes, int]]] | None"
    first: int


@dataclass
class _Waiting:
    key: Hashable
    documents: list[bytes]
    future: "asyncio.Future[_Run]"


class CombinedRuns:
    """One backend's combined runs. Groups waiting for it at the same time that share a key go through
    as one run, up to `max_documents`: a run costs LibreOffice a fixed load (styles, document set-up)
    worth several letters, so chunks in flight together pay it once. Each group cuts its own pages
    out of the run's PDF, so the backend goes on with the next run meanwhile."""

    def __init__(
        self,
        converter: Converter,
        max_documents: int,
        parallel: int,
        combine: Combiner = combine_docx,
        split: Splitter = split_pdf_by_destinations,
    ) -> None:
        self.converter = converter
        self.max_documents = max_documents
        self._parallel = parallel
        self._combine, self._split = combine, split  # the hand-written ones, unless the settings name the libraries
        self._waiting: list[_Waiting] = []
        self._arrived = asyncio.Event()
        self._runners: list[asyncio.Task[None]] = []

    async def convert(self, key: Hashable, documents: list[bytes]) -> list[Converted] | None:
        """The documents' PDFs from a combined run, or None when they must go one by one."""
        waiting = _Waiting(key, documents, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        self._arrived.set()
        if not self._runners:
            self._runners = [asyncio.create_task(self._run_forever()) for _ in range(self._parallel)]
        run = await waiting.future
        if run.parts is None:
            return None
        try:
            parts = await asyncio.shield(run.parts)  # the other groups of the run wait for the same split
        except Exception as exc:  # noqa: BLE001 - a split that fails sends the documents one by one
            _combined_failed(self.converter, len(documents), exc)
            return None
        return [Converted(pdf=part, pages=pages) for part, pages in parts[run.first : run.first + len(documents)]]

    async def stop(self) -> None:
        for runner in self._runners:
            runner.cancel()
        await asyncio.gather(*self._runners, return_exceptions=True)
        self._runners = []
        for waiting in self._waiting:
            waiting.future.cancel()
        self._waiting = []

    async def _run_forever(self) -> None:
        """Run after run; the next run's documents are combined while LibreOffice lays out this one:
        those waiting when it starts or, if none were, the first to arrive during it."""
        following: tuple[list[_Waiting], asyncio.Task[bytes | None]] | None = None
        running: asyncio.Task[None] | None = None
        try:
            while True:
                if following is None:
                    await self._arrival()
                    following = self._combine_next()
                    continue
                group, combining = following
                combined = await combining
                following = self._combine_next()
                running = asyncio.create_task(self._run(group, combined))
                while following is None and not running.done():
                    arrival = asyncio.create_task(self._arrival())
                    try:
                        await asyncio.wait({running, arrival}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        arrival.cancel()
                    following = self._combine_next()
                await running
                running = None
        except asyncio.CancelledError:  # stopping: nobody waits for ever on a run that will not finish
            if running is not None:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
            if following is not None:
                following[1].cancel()
                for waiting in following[0]:
                    waiting.future.cancel()
            raise

    async def _arrival(self) -> None:
        """Until a group waits."""
        while not self._waiting:
            self._arrived.clear()
            await self._arrived.wait()

    def _combine_next(self) -> tuple[list[_Waiting], "asyncio.Task[bytes | None]"] | None:
        group = self._take()
        if not group:
            return None
        documents = [document for waiting in group for document in waiting.documents]
        return group, asyncio.create_task(self._combined_docx(documents))

    async def _combined_docx(self, documents: list[bytes]) -> bytes | None:
        """The documents combined into one, or None when they must go one by one."""
        try:
            return await asyncio.to_thread(self._combine, documents)
        except Exception as exc:  # noqa: BLE001 - combining is an optimisation: see _combined_pdf
            _combined_failed(self.converter, len(documents), exc)
            return None

    def _take(self) -> list[_Waiting]:
        """The oldest waiting group, and the next ones of its key that fit beside it."""
        waiting = [w for w in self._waiting if not w.future.done()]  # a cancelled chunk drops out
        group: list[_Waiting] = []
        size = 0
        for candidate in waiting:
            if not group or (candidate.key == group[0].key and size + len(candidate.documents) <= self.max_documents):
                group.append(candidate)
                size += len(candidate.documents)
        self._waiting = [w for w in waiting if w not in group]
        return group

    async def _run(self, group: list[_Waiting], combined: bytes | None) -> None:
        documents = sum(len(waiting.documents) for waiting in group)
        try:
            pdf = None if combined is None else await _combined_pdf(combined, documents, self.converter)
        except asyncio.CancelledError:
            for waiting in group:
                waiting.future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - the backend is unavailable: each chunk of the run is retried
            for waiting in group:
                if not waiting.future.done():
                    waiting.future.set_exception(exc)
            return
        parts = None
        if pdf is not None:  # cut once for all the run's groups, beside the next run rather than before it
            parts = asyncio.ensure_future(asyncio.to_thread(self._split, pdf, documents))
            parts.add_done_callback(_seen)  # its failure reaches each group; none may be left to wait
        first = 0
        for waiting in group:
            if not waiting.future.done():
                waiting.future.set_result(_Run(parts, first))
            first += len(waiting.documents)


def _seen(task: "asyncio.Future[object]") -> None:
    if not task.cancelled():
        task.exception()  # marked as retrieved: the groups that wait for it report it


async def _combined_pdf(combined: bytes, documents: int, converter: Converter) -> bytes | None:
    """The PDF of the combined documents, or None when they must go one by one.

    Whatever goes wrong here or in the split, short of the backend being
    unavailable, sends the documents one by one: combining is an optimisation
    and must never cost a document its PDF, nor a chunk its answer.
    """
    try:
        return await _timed(converter, combined, "batch", retry=False)
    except ConverterUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - see above
        _combined_failed(converter, documents, exc)
        return None


def _combined_failed(converter: Converter, documents: int, error: Exception) -> None:
    if not isinstance(error, ConversionFailed):  # those are counted by _timed
        CONVERSION_FAILURES.labels(converter.name, "batch", _FAILURE_REASONS.get(type(error), "error")).inc()
    log.warning("combined conversion failed: converting one by one", documents=documents, error=repr(error))


async def _convert_alone(docx: bytes, converter: Converter) -> Converted:
    try:
        pdf = await _timed(converter, docx, "single", retry=True)
        pages = await asyncio.to_thread(page_count, pdf)
    except UnreadablePdf as exc:
        CONVERSION_FAILURES.labels(converter.name, "single", "unreadable").inc()
        return Converted(error=str(exc))
    except ConversionFailed as exc:
        return Converted(error=str(exc))
    return Converted(pdf=pdf, pages=pages)


async def _timed(converter: Converter, docx: bytes, mode: str, *, retry: bool) -> bytes:
    started = time.perf_counter()
    try:
        return await converter.convert(docx, retry=retry)
    except ConversionFailed as exc:
        CONVERSION_FAILURES.labels(converter.name, mode, exc.reason).inc()
        raise
    finally:
        CONVERSIONS.labels(converter.name, mode).inc()
        CONVERSION_SECONDS.labels(converter.name, mode).observe(time.perf_counter() - started)
