"""In-memory stand-ins for merge's repositories: the same public methods and return types, entities kept in
dicts. Each read gives a copy, as the database does, so a change reaches the store only when it is saved."""

import copy
import re
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from publipost_contracts import Problem
from publipost_merge.domain import (
    Document,
    DocumentStatus,
    EmailState,
    Mailing,
    MailingRequest,
    MailingStatus,
    TenantSettings,
)
from publipost_merge.repository import PageCount, PendingConversion


class FakeMailingRepository:
    def __init__(self) -> None:
        self.mailings: dict[str, Mailing] = {}

    async def ensure_indexes(self) -> None:
        pass

    async def create(self, mailing: Mailing) -> bool:
        if mailing.id in self.mailings:
            return False
        self.mailings[mailing.id] = copy.deepcopy(mailing)
        return True

    async def get(self, mailing_id: str, tenant_id: str | None = None) -> Mailing | None:
        mailing = self.mailings.get(mailing_id)
        if mailing is None or (tenant_id is not None and mailing.tenant_id != tenant_id):
            return None
        return copy.deepcopy(mailing)

    async def save(self, mailing: Mailing, *fields: str) -> None:
        if (stored := self.mailings.get(mailing.id)) is not None:
            for name in fields:
                setattr(stored, name, copy.deepcopy(getattr(mailing, name)))

    async def move(self, mailing: Mailing, from_status: MailingStatus, *fields: str) -> bool:
        stored = self.mailings.get(mailing.id)
        if stored is None or stored.status != from_status:
            return False
        await self.save(mailing, "status", *fields)
        return True

    async def set_documents_file(self, mailing_id: str, file_id: str) -> bool:
        stored = self.mailings.get(mailing_id)
        if stored is None or stored.documents_file_id is not None:
            return False
        stored.documents_file_id = file_id
        return True

    async def progressed(self, mailing_id: str, *, rendered: int | None = None) -> None:
        if (stored := self.mailings.get(mailing_id)) is not None:
            stored.progress_at = datetime.now(UTC)
            if rendered is not None:
                stored.rendered = rendered

    async def page(
        self, tenant_id: str, *, skip: int, limit: int, status: str | None = None, name: str | None = None
    ) -> tuple[list[Mailing], int]:
        found = [
            m
            for m in self.mailings.values()
            if m.tenant_id == tenant_id
            and (status is None or m.status == status)
            and (not name or re.search(re.escape(name), m.name, re.IGNORECASE))
        ]
        found.sort(key=lambda m: (m.created_at, m.id), reverse=True)
        return [copy.deepcopy(m) for m in found[skip : skip + limit]], len(found)

    async def stalled(self, status: MailingStatus, before: datetime) -> AsyncIterator[Mailing]:
        for mailing in list(self.mailings.values()):
            if mailing.status == status and mailing.progress_at is not None and mailing.progress_at < before:
                yield copy.deepcopy(mailing)

    async def delete(self, mailing_id: str) -> None:
        self.mailings.pop(mailing_id, None)


class FakeDocumentRepository:
    def __init__(self) -> None:
        self.documents: dict[str, Document] = {}

    async def ensure_indexes(self) -> None:
        pass

    def _of(self, mailing_id: str, status: DocumentStatus | None = None) -> list[Document]:
        return sorted(
            (d for d in self.documents.values() if d.mailing_id == mailing_id and status in (None, d.status)),
            key=lambda d: d.index,
        )

    async def get(self, document_id: str) -> Document | None:
        return copy.deepcopy(self.documents.get(document_id))

    async def get_many(self, document_ids: list[str]) -> list[Document]:
        return [copy.deepcopy(self.documents[i]) for i in document_ids if i in self.documents]

    async def add_many(self, documents: list[Document]) -> None:
        for document in documents:
            self.documents.setdefault(document.id, copy.deepcopy(document))

    async def existing_ids(self, mailing_id: str) -> set[str]:
        return {d.id for d in self._of(mailing_id)}

    async def save_many(self, documents: list[Document], *fields: str) -> None:
        for document in documents:
            if (stored := self.documents.get(document.id)) is not None:
                for name in fields:
                    setattr(stored, name, copy.deepcopy(getattr(document, name)))

    async def count(self, mailing_id: str, status: DocumentStatus | None = None) -> int:
        return len(self._of(mailing_id, status))

    async def converted_by(self, mailing_id: str) -> dict[str, int]:
        return dict(Counter(d.converted_by for d in self._of(mailing_id, None) if d.converted_by))

    async def in_order(
        self,
        mailing_id: str,
        *,
        after: int = -1,
        limit: int = 0,
        status: DocumentStatus | None = None,
        email_state: EmailState | None = None,
    ) -> AsyncIterator[Document]:
        found = [
            d
            for d in self._of(mailing_id, status)
            if d.index > after and (email_state is None or d.email_state == email_state)
        ]
        for document in found[:limit] if limit else found:
            yield copy.deepcopy(document)

    async def page_counts(self, mailing_id: str) -> AsyncIterator[PageCount]:
        for document in self._of(mailing_id, DocumentStatus.CONVERTED):
            yield PageCount(document.index, document.page_count)

    async def pending_render(self, mailing_id: str) -> AsyncIterator[PendingConversion]:
        for document in self._of(mailing_id, DocumentStatus.RENDERED):
            assert document.docx_blob_id is not None
            yield PendingConversion(document.id, document.docx_blob_id, document.index)

    async def reassign_rest(self, mailing_id: str, to_mailing_id: str) -> None:
        for document in self._of(mailing_id):
            document.mailing_id = to_mailing_id
            document.last_failure = document.last_failure_kind = None

    async def blob_ids(self, mailing_id: str) -> AsyncIterator[str]:
        for document in self._of(mailing_id):
            for blob_id in (document.docx_blob_id, document.pdf_blob_id):
                if blob_id:
                    yield blob_id

    async def delete_of(self, mailing_id: str) -> None:
        for document in self._of(mailing_id):
            del self.documents[document.id]


class FakeTenantSettingsRepository:
    def __init__(self) -> None:
        self.settings: dict[str, TenantSettings] = {}

    async def ensure_indexes(self) -> None:
        pass

    async def get(self, tenant_id: str) -> TenantSettings:
        return copy.deepcopy(self.settings.get(tenant_id)) or TenantSettings(id=tenant_id)

    async def save(self, settings: TenantSettings) -> None:
        self.settings[settings.id] = copy.deepcopy(settings)


class FakeMailingRequestRepository:
    def __init__(self) -> None:
        self.requests: dict[str, MailingRequest] = {}

    async def ensure_indexes(self) -> None:
        pass

    async def claim(self, request: MailingRequest) -> bool:
        if request.id in self.requests:
            return False
        self.requests[request.id] = copy.deepcopy(request)
        return True

    async def get(self, mailing_id: str, tenant_id: str | None = None) -> MailingRequest | None:
        request = self.requests.get(mailing_id)
        if request is None or (tenant_id is not None and request.tenant_id != tenant_id):
            return None
        return copy.deepcopy(request)

    async def refused(self, mailing_id: str, problems: list[Problem]) -> None:
        if (request := self.requests.get(mailing_id)) is not None and request.refusal is None:
            request.refusal = list(problems)

    async def delete(self, mailing_id: str) -> None:
        self.requests.pop(mailing_id, None)
