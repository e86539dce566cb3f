"""Merge's rules over the in-memory repositories the composition-root tests use (tests/unit/fakes/merge.py)."""

import inspect

from publipost_merge.domain import Document, MailingContents, MailingStatus
from publipost_merge.print_file import plan_parts
from publipost_merge.repository import (
    DocumentRepository,
    MailingRepository,
    MailingRequestRepository,
    TenantSettingsRepository,
)

from tests.unit.fakes.merge import (
    FakeDocumentRepository,
    FakeMailingRepository,
    FakeMailingRequestRepository,
    FakeTenantSettingsRepository,
)
from tests.unit.test_merge_domain import a_mailing


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if not name.startswith("_") and inspect.isfunction(member)
    }


def test_the_fakes_have_the_repositories_methods_with_their_signatures():
    for real, fake in [
        (MailingRepository, FakeMailingRepository),
        (DocumentRepository, FakeDocumentRepository),
        (TenantSettingsRepository, FakeTenantSettingsRepository),
        (MailingRequestRepository, FakeMailingRequestRepository),
    ]:
        fake_methods = public_methods(fake)
        for name, signature in public_methods(real).items():
            assert str(fake_methods[name]) == str(signature), (fake.__name__, name)


async def test_a_pdf_mailing_of_five_with_one_failed_plans_its_print_file_from_page_counts_and_completes_once():
    mailings, documents = FakeMailingRepository(), FakeDocumentRepository()
    mailing = a_mailing("pdf")
    await mailings.create(mailing)
    rendered = [Document.rendered(mailing, index, {"id": f"r{index}"}) for index in range(5)]
    for document, pages in zip(rendered, [2, 3, 1, 4, 0], strict=True):
        if document.index == 4:
            document.conversion_failed("LibreOffice timed out")
        else:
            document.converted(f"pdf-{document.index}", pages)
    await documents.add_many(rendered)

    parts = await plan_parts(documents, mailing, page_limit=5)

    assert [(p.documents, p.pages, p.first_index, p.last_index) for p in parts] == [(2, 5, 0, 1), (2, 5, 2, 3)]
    mailing.rendering_done(5)
    first, second = await mailings.get(mailing.id), await mailings.get(mailing.id)
    assert first is not None and second is not None
    contents = MailingContents(documents=5, failed=1, parts=parts, documents_file_id="f")
    first.complete(contents)
    second.complete(contents)
    assert await mailings.move(first, MailingStatus.RENDERING, *MailingContents.FIELDS)
    assert not await mailings.move(second, MailingStatus.RENDERING, *MailingContents.FIELDS)  # lost the race
    stored = await mailings.get(mailing.id)
    assert stored is not None and (stored.status, stored.failed, stored.parts) == (MailingStatus.READY, 1, parts)
