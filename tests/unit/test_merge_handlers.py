"""merge's handlers through its composition root (app.build: its consumers, their wiring), its repositories
and blobs in memory, on FastStream's TestRabbitBroker: completion and regrouping run in milliseconds.
tests/integration holds the same flows against the real pieces."""

from publipost_contracts import (
    DispatchCompleted,
    DocumentSent,
    DocumentsRendered,
    Failure,
    MailingRegrouped,
    MergeCompleted,
    RenderResult,
)
from publipost_contracts.reads import DocumentView, FailureView
from publipost_merge.app import build
from publipost_merge.domain import Document, DocumentStatus, EmailState, MailingStatus, TenantSettings, document_id_for
from publipost_merge.settings import MergeSettings

from tests.unit.fakes.merge import FakeDocumentRepository, FakeMailingRepository, FakeTenantSettingsRepository
from tests.unit.fakes.storage import FakeStorage
from tests.unit.in_memory import InMemoryService
from tests.unit.test_merge_domain import a_mailing


async def merge_service(documents: int, output: str = "pdf") -> tuple[InMemoryService, str]:
    """merge with a mailing of `documents` rendered documents waiting for their PDFs (or page counts)."""
    mailings, stored = FakeMailingRepository(), FakeDocumentRepository()
    mailing = a_mailing(output)
    mailing.rendering_done(documents)
    await mailings.create(mailing)
    await stored.add_many(
        [Document.rendered(mailing, n, {"id": f"r{n}", "email": f"c{n}@example.test"}) for n in range(documents)]
    )
    service = InMemoryService(
        build(MergeSettings()),
        storage=FakeStorage(),
        mailings=mailings,
        documents=stored,
        tenant_settings=FakeTenantSettingsRepository(),
    )
    return service, mailing.id


def pdfs(mailing_id: str, documents: range, chunk: int = 0) -> DocumentsRendered:
    return DocumentsRendered(
        tenant_id="acme",
        correlation_id="c-1",
        mailing_id=mailing_id,
        chunk=chunk,
        results=[
            RenderResult(
                document_id=document_id_for(mailing_id, n), pdf_blob_id=f"pdf-{n}", page_count=2, backend="libreoffice"
            )
            for n in documents
        ],
    )


async def test_the_last_chunk_of_pdfs_settles_the_mailing_and_announces_it_without_building_the_print_file():
    merge, mailing_id = await merge_service(4)
    async with merge:
        await merge.deliver(pdfs(mailing_id, range(2)))
        assert merge.published(MergeCompleted) == []  # two documents still wait for their PDF
        await merge.deliver(pdfs(mailing_id, range(2, 4), chunk=1))

        (completed,) = merge.published(MergeCompleted)
        assert (completed.status, completed.documents, completed.failed) == ("ready", 4, 0)
        assert [(p.documents, p.pages) for p in completed.parts] == [(4, 8)]
        mailing = await merge.ctx.mailings.get(mailing_id)
        assert (mailing.status, mailing.converted_by) == (MailingStatus.READY, {"libreoffice": 4})
        blobs = merge.ctx.storage.blobs
        lines = [DocumentView.model_validate_json(line) async for line in blobs.lines(mailing.documents_file_id)]
        assert [(d.index, d.status, d.pdf_blob_id) for d in lines] == [(n, "converted", f"pdf-{n}") for n in range(4)]
        assert completed.parts[0].blob_id not in blobs.files  # built at its first download only


async def test_a_dispatch_s_outcome_regroups_the_mailing_into_its_sent_and_not_sent_mailings():
    merge, mailing_id = await merge_service(3)
    async with merge:
        await merge.deliver(pdfs(mailing_id, range(3)))
        failed = document_id_for(mailing_id, 1)
        outcome = DispatchCompleted(
            tenant_id="acme", correlation_id="c-1", dispatch_id="d1", mailing_id=mailing_id, sent=2, failed=1,
            failures=[Failure(document_id=failed, reason="550 mailbox unknown", kind="address")],
        )  # fmt: skip
        await merge.deliver(outcome)

        (regrouped,) = merge.published(MailingRegrouped)
        assert (regrouped.sent, regrouped.not_sent) == (2, 1)
        source = await merge.ctx.mailings.get(mailing_id)
        assert source.status is MailingStatus.REPLACED
        assert source.replaced_by == [regrouped.sent_mailing_id, regrouped.not_sent_mailing_id]
        not_sent = await merge.ctx.mailings.get(regrouped.not_sent_mailing_id)
        assert (not_sent.name, not_sent.documents, not_sent.status) == (
            "Notices (not sent by e-mail)",
            1,
            MailingStatus.READY,
        )
        moved = [d async for d in merge.ctx.documents.in_order(not_sent.id)]
        assert [(d.id, d.status) for d in moved] == [(failed, DocumentStatus.CONVERTED)]
        # The documents file a re-send reads says why each failed: a re-send asks the directory first.
        [line] = [line async for line in merge.ctx.storage.blobs.lines(not_sent.documents_file_id, tenant_id="acme")]
        assert DocumentView.model_validate_json(line).last_failure == FailureView(reason="550 mailbox unknown", kind="address")


def completed(mailing_id: str, dispatch_id: str, failed: list[int]) -> DispatchCompleted:
    return DispatchCompleted(
        tenant_id="acme", correlation_id="c-1", dispatch_id=dispatch_id, mailing_id=mailing_id, sent=0,
        failed=len(failed), failures=[Failure(document_id=document_id_for(mailing_id, n), reason="550") for n in failed],
    )  # fmt: skip


async def test_a_mailing_sent_whole_is_replaced_by_its_sent_mailing_only():
    merge, mailing_id = await merge_service(2)
    async with merge:
        await merge.deliver(pdfs(mailing_id, range(2)))
        await merge.deliver(completed(mailing_id, "d1", failed=[]))

        (regrouped,) = merge.published(MailingRegrouped)
        source = await merge.ctx.mailings.get(mailing_id)
        assert source.replaced_by == [regrouped.sent_mailing_id] and regrouped.not_sent_mailing_id is None


async def test_documents_re_sent_join_the_sent_mailing_and_each_shows_its_e_mail_state():
    merge, mailing_id = await merge_service(3)
    async with merge:
        await merge.deliver(pdfs(mailing_id, range(3)))
        await merge.deliver(completed(mailing_id, "d1", failed=[1, 2]))
        (first,) = merge.published(MailingRegrouped)
        await merge.deliver(completed(first.not_sent_mailing_id, "d2", failed=[]))
        second = merge.published(MailingRegrouped)[-1]
        re_sent = document_id_for(mailing_id, 1)
        await merge.deliver(
            DocumentSent(
                tenant_id="acme", correlation_id="c-1", dispatch_id="d2", mailing_id=first.not_sent_mailing_id,
                document_id=re_sent, document_number="r1", recipients=["c1@example.test"],
            )
        )  # fmt: skip

        assert (second.sent_mailing_id, second.sent, second.not_sent) == (first.sent_mailing_id, 2, 0)
        sent = await merge.ctx.mailings.get(first.sent_mailing_id)
        assert sent.documents == 3
        states = {d.index: d for d in [d async for d in merge.ctx.documents.in_order(sent.id)]}
        assert states[1].email_state is EmailState.SENT and states[1].sent_to == ["c1@example.test"]
        assert (states[2].email_state, states[2].email_error) == (EmailState.NOT_SENT, "550")


async def test_a_word_mailing_s_print_file_is_split_by_the_page_counts_render_pdf_gives():
    merge, mailing_id = await merge_service(3, output="docx")
    async with merge:
        await merge.ctx.tenant_settings.save(TenantSettings(id="acme", combined_page_limit=5))
        counts = DocumentsRendered(
            tenant_id="acme", correlation_id="c-1", mailing_id=mailing_id, chunk=0,
            results=[RenderResult(document_id=document_id_for(mailing_id, n), page_count=3) for n in range(3)],
        )  # fmt: skip
        await merge.deliver(counts)

        (completed,) = merge.published(MergeCompleted)
        assert [(p.documents, p.pages) for p in completed.parts] == [(1, 3), (1, 3), (1, 3)]
        documents = [d async for d in merge.ctx.documents.in_order(mailing_id)]
        assert {(d.status, d.pdf_blob_id) for d in documents} == {(DocumentStatus.CONVERTED, None)}
