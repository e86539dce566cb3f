"""A mailing asked for over HTTP that merge then refuses (its template gone meanwhile): the request keeps
why, for GET /mailings/{id}, its records file goes, and the same request id may be asked again. Through
merge's composition root, in memory."""

from datetime import UTC, datetime

from publipost_contracts import MergeRejected, MergeRequested, Problem
from publipost_merge.app import build
from publipost_merge.clients import TemplateRef
from publipost_merge.domain import MailingRequest, mailing_id_for
from publipost_merge.settings import MergeSettings
from publipost_merge.starting import InlineRecords, MailingStart, start_mailing
from publipost_refusals import Gone

from tests.unit.fakes.merge import FakeDocumentRepository, FakeMailingRepository, FakeMailingRequestRepository
from tests.unit.fakes.storage import FakeStorage
from tests.unit.in_memory import InMemoryService


class NoTemplates:
    async def get(self, tenant_id: str, template_id: str, version: int | None = None) -> None:
        return None


async def test_merges_refusal_of_a_request_made_over_http_is_kept_with_it_and_its_records_file_deleted():
    storage, requests = FakeStorage(), FakeMailingRequestRepository()
    records = await storage.blobs.put(b'{"id": "r1"}\n', "m.records.ndjson", "application/x-ndjson", tenant_id="acme")
    mailing_id = mailing_id_for("acme", "req-1")
    await requests.claim(
        MailingRequest(
            id=mailing_id, tenant_id="acme", request_id="req-1", records_file_id=records, requested_at=datetime.now(UTC)
        )
    )
    merge = InMemoryService(
        build(MergeSettings()),
        storage=storage,
        mailings=FakeMailingRepository(),
        documents=FakeDocumentRepository(),
        requests=requests,
        templates=NoTemplates(),
    )
    event = MergeRequested(
        tenant_id="acme", correlation_id="c-1", request_id="req-1", template_id="t-gone", records_file_id=records
    )

    async with merge:
        await merge.deliver(event)

    [rejected] = merge.published(MergeRejected)
    assert rejected.problems == [Problem(field="template_id", message="no template 't-gone' for this tenant")]
    request = await requests.get(mailing_id)
    assert request is not None and request.refusal == rejected.problems
    assert isinstance(request.not_found(), Gone)  # GET /mailings/{id} answers 410: it will never exist
    assert isinstance(request.not_found(), Gone)  # GET /mailings/{id} answers 410: it will never exist
    assert str(request.not_found()) == (
        f"mailing {mailing_id!r} will not exist: merge refused its request "
        "(template_id: no template 't-gone' for this tenant)"
    )
    assert not await storage.blobs.exists(records)


def test_a_request_merge_has_not_taken_yet_says_so():
    request = MailingRequest(id="m-1", tenant_id="acme", request_id="req-1", requested_at=datetime.now(UTC))

    assert not isinstance(request.not_found(), Gone)  # 404: it will exist, merge has not taken it yet
    assert str(request.not_found()) == (
        "mailing 'm-1' is not started yet: merge has its request and takes it shortly; ask again"
    )


class TemplateGoneAfterTheCheck:
    """The template is there when POST /mailings checks it, gone when merge takes the request."""

    def __init__(self) -> None:
        self.asked = 0

    async def get(self, tenant_id: str, template_id: str, version: int | None = None) -> TemplateRef | None:
        self.asked += 1
        if self.asked % 2 == 0:
            return None
        return TemplateRef(template_id, "Notice", 1, "blob-1", ["name"], [], "standard", True, False)


async def test_a_request_refused_by_merge_may_be_asked_again_under_the_same_id():
    requests = FakeMailingRequestRepository()
    merge = InMemoryService(
        build(MergeSettings()),
        storage=FakeStorage(),
        mailings=FakeMailingRepository(),
        documents=FakeDocumentRepository(),
        requests=requests,
        templates=TemplateGoneAfterTheCheck(),
    )
    start = MailingStart("req-1", "t-1", None, None, {}, "pdf", "refuse", "client")
    records = InlineRecords([{"id": "r1", "name": "Ann"}])

    async with merge:
        first = await start_mailing(merge.ctx, "acme", "c-1", start, records)
        refused = await requests.get(first.mailing_id)
        again = await start_mailing(merge.ctx, "acme", "c-2", start, records)

    assert first == again
    assert refused is not None and refused.refusal is not None
    requested = merge.published(MergeRequested)
    assert len(requested) == 2 and requested[0].event_id != requested[1].event_id
    assert len(merge.published(MergeRejected)) == 2
