"""In-memory stand-ins for dispatch's repositories: the same public async methods and return types, the
entities held in dicts. Each read gives a copy, as the database does: an entity changed by a caller is
changed in the store only by the repository call that writes it. The conditional updates of the real
repositories are the entities' own moves here (a claim that `Delivery.claim_for` refuses is not made)."""

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from publipost_contracts import AddressAnswer
from publipost_contracts.reads import RecipientRecord
from publipost_dispatch.clients import UnknownSegment
from publipost_dispatch.domain import PENDING, DeliveryState, DispatchStatus
from publipost_dispatch.model import (
    AcceptedEmail,
    Delivery,
    Dispatch,
    DispatchState,
    NotClaimable,
    NotHeld,
    SealedPassword,
    SendingAccount,
    TenantSending,
)


def _now() -> datetime:
    return datetime.now(UTC)


class FakeDispatchRepository:
    def __init__(self) -> None:
        self.stored: dict[str, Dispatch] = {}

    async def ensure_indexes(self) -> None:
        pass

    async def create(self, dispatch: Dispatch) -> None:
        self.stored.setdefault(dispatch.id, copy.deepcopy(dispatch))

    async def get(self, key: str) -> Dispatch | None:
        return copy.deepcopy(self.stored.get(key))

    async def recent(self, key: str) -> Dispatch | None:
        return await self.get(key)

    async def takes_sends(self, key: str) -> bool:
        stored = self.stored.get(key)
        return stored is not None and stored.takes_sends

    async def find(self, tenant_id: str, dispatch_id: str) -> Dispatch | None:
        found = [d for d in self.stored.values() if (d.tenant_id, d.dispatch_id) == (tenant_id, dispatch_id)]
        return copy.deepcopy(found[0]) if found else None

    async def move(self, dispatch: Dispatch, from_status: DispatchStatus, *fields: str) -> bool:
        stored = self.stored.get(dispatch.id)
        if stored is None or stored.status != from_status:
            return False
        await self.save(dispatch, "status", *fields)
        return True

    async def save(self, dispatch: Dispatch, *fields: str) -> None:
        stored = self.stored.get(dispatch.id)
        if stored is not None:
            for name in fields:
                setattr(stored, name, copy.deepcopy(getattr(dispatch, name)))

    async def set_failures_file(self, key: str, file_id: str) -> bool:
        stored = self.stored.get(key)
        if stored is None or stored.failures_file_id is not None:
            return False
        stored.failures_file_id = file_id
        return True

    async def count_error(self, key: str) -> int:
        stored = self.stored[key]
        stored.errors += 1
        return stored.errors

    async def resume(self, dispatch: Dispatch) -> Dispatch | None:
        stored = self.stored.get(dispatch.id)
        if stored is None or stored.status is not DispatchStatus.PAUSED:
            return None
        stored.resume()
        return copy.deepcopy(stored)

    async def stalled_fan_outs(self, before: datetime) -> AsyncIterator[Dispatch]:
        for dispatch in list(self.stored.values()):
            if (
                dispatch.status is DispatchStatus.FANNING_OUT
                and dispatch.request is not None
                and dispatch.progress_at is not None
                and dispatch.progress_at < before
            ):
                yield copy.deepcopy(dispatch)

    async def in_status(self, *statuses: DispatchStatus) -> AsyncIterator[DispatchState]:
        for dispatch in list(self.stored.values()):
            if dispatch.status in statuses:
                yield DispatchState(dispatch.id, dispatch.status)


class FakeDeliveryRepository:
    def __init__(self) -> None:
        self.stored: dict[str, Delivery] = {}

    async def ensure_indexes(self) -> None:
        pass

    async def add(self, delivery: Delivery) -> None:
        self.stored.setdefault(delivery.id, copy.deepcopy(delivery))

    async def add_many(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            await self.add(delivery)

    async def get(self, delivery_id: str) -> Delivery | None:
        return copy.deepcopy(self.stored.get(delivery_id))

    async def claim(self, delivery_id: str, holder: str, lease_s: float) -> bool:
        stored = self.stored.get(delivery_id)
        if stored is None:
            return False
        try:
            stored.claim_for(holder, lease_s, _now())
        except NotClaimable:
            return False
        return True

    async def claim_and_get(self, delivery_id: str, holder: str, lease_s: float) -> Delivery | None:
        return await self.get(delivery_id) if await self.claim(delivery_id, holder, lease_s) else None

    async def finish(self, delivery: Delivery) -> bool:
        stored = self.stored.get(delivery.id)
        if stored is None or stored.state not in PENDING:
            return False
        for name in Delivery.OUTCOME:
            setattr(stored, name, copy.deepcopy(getattr(delivery, name)))
        stored.state, stored.finished_at, stored.lease_until = delivery.state, _now(), None
        return True

    async def release(self, delivery_id: str, holder: str, error: str) -> None:
        try:
            self.stored[delivery_id].release(holder, error)
        except (KeyError, NotHeld):
            pass

    async def give_back(self, delivery_id: str, holder: str) -> None:
        try:
            self.stored[delivery_id].give_back(holder)
        except (KeyError, NotHeld):
            pass

    async def accept(self, delivery_id: str, holder: str, envelope: int, accepted: AcceptedEmail) -> None:
        try:
            self.stored[delivery_id].accept(holder, envelope, accepted)
        except (KeyError, NotHeld):
            pass

    async def take_back(self, delivery_id: str, holder: str | None) -> bool:
        try:
            self.stored[delivery_id].take_back(holder)
        except (KeyError, NotHeld):
            return False
        return True

    async def renew(self, holder: str, delivery_ids: set[str], lease_s: float) -> None:
        for delivery_id in delivery_ids:
            stored = self.stored.get(delivery_id)
            if stored is not None and stored.state is DeliveryState.SENDING and stored.holder == holder:
                stored.lease_until = _now() + timedelta(seconds=lease_s)

    def _of(self, dispatch_key: str, states: tuple[str, ...]) -> list[Delivery]:
        return [d for d in self.stored.values() if d.dispatch_key == dispatch_key and d.state in states]

    async def any_pending(self, dispatch_key: str) -> bool:
        return bool(self._of(dispatch_key, PENDING))

    async def any_queued(self, dispatch_key: str) -> bool:
        return bool(self._of(dispatch_key, (DeliveryState.QUEUED,)))

    async def count(self, dispatch_key: str, states: tuple[str, ...]) -> int:
        return len(self._of(dispatch_key, states))

    async def in_state(
        self, dispatch_key: str, states: tuple[str, ...], *, after: int = -1, limit: int = 0
    ) -> AsyncIterator[Delivery]:
        found = sorted((d for d in self._of(dispatch_key, states) if d.index > after), key=lambda d: d.index)
        for delivery in found[:limit] if limit else found:
            yield copy.deepcopy(delivery)

    async def sending(self, dispatch_keys: list[str]) -> list[Delivery]:
        return [copy.deepcopy(d) for key in dispatch_keys for d in self._of(key, (DeliveryState.SENDING,))]

    def _newest_first(self, deliveries: list[Delivery]) -> list[Delivery]:
        return [copy.deepcopy(d) for d in sorted(deliveries, key=lambda d: (d.created_at, d.id), reverse=True)]

    async def history(self, tenant_id: str, terms: list[str], *, skip: int, limit: int) -> list[Delivery]:
        wanted = terms or ["*"]
        found = [d for d in self.stored.values() if d.tenant_id == tenant_id and all(t in d.terms for t in wanted)]
        return self._newest_first(found)[skip : skip + limit]

    async def sends_of(self, tenant_id: str, document_id: str) -> list[Delivery]:
        found = [d for d in self.stored.values() if d.tenant_id == tenant_id and d.document_id == document_id]
        return self._newest_first(found)


class FakeReplicaRepository:
    def __init__(self) -> None:
        self.seen: dict[str, datetime] = {}

    async def ensure_indexes(self) -> None:
        pass

    async def beat(self, holder: str) -> None:
        self.seen[holder] = _now()

    async def silent(self, holders: set[str], silence_s: float) -> set[str]:
        since = _now() - timedelta(seconds=silence_s)
        return {holder for holder in holders if self.seen.get(holder, since - timedelta(seconds=1)) < since}


class FakeAccountRepository:
    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], SendingAccount] = {}

    async def ensure_indexes(self) -> None:
        pass

    async def add(self, account: SendingAccount) -> None:
        if (account.tenant_id, account.id) in self.stored:
            raise KeyError(f"duplicate account {account.id}")  # the database's DuplicateKeyError
        self.stored[(account.tenant_id, account.id)] = copy.deepcopy(account)

    async def get(self, tenant_id: str, account_id: str) -> SendingAccount | None:
        return copy.deepcopy(self.stored.get((tenant_id, account_id)))

    async def replace(self, account: SendingAccount) -> bool:
        if (account.tenant_id, account.id) not in self.stored:
            return False
        self.stored[(account.tenant_id, account.id)] = copy.deepcopy(account)
        return True

    async def all_of(self, tenant_id: str) -> list[SendingAccount]:
        found = [a for (tenant, _), a in self.stored.items() if tenant == tenant_id]
        return [copy.deepcopy(a) for a in sorted(found, key=lambda a: a.name)]

    async def delete(self, tenant_id: str, account_id: str) -> bool:
        return self.stored.pop((tenant_id, account_id), None) is not None

    async def with_passwords(self) -> AsyncIterator[SealedPassword]:
        for account in list(self.stored.values()):
            if account.password_sealed is not None:
                yield SealedPassword(account.tenant_id, account.id, account.password_sealed)

    async def swap_password(self, tenant_id: str, account_id: str, before: str, after: str) -> bool:
        account = self.stored.get((tenant_id, account_id))
        if account is None or account.password_sealed != before:
            return False
        account.password_sealed = after
        return True


class FakeTenantSendingRepository:
    def __init__(self) -> None:
        self.stored: dict[str, TenantSending] = {}

    async def ensure_indexes(self) -> None:
        pass

    async def get(self, tenant_id: str) -> TenantSending:
        return copy.deepcopy(self.stored.get(tenant_id, TenantSending(id=tenant_id)))

    async def save(self, choices: TenantSending) -> None:
        self.stored[choices.id] = copy.deepcopy(choices)


class FakeDirectory:
    """The recipient directory's segments as dispatch's DirectoryClient reads them: each tenant's, by id."""

    def __init__(self, segments: dict[tuple[str, str], list[RecipientRecord]] | None = None) -> None:
        self.segments = segments or {}
        self.asked = 0

    async def check_segment(self, tenant_id: str, segment_id: str) -> None:
        self.asked += 1
        if (tenant_id, segment_id) not in self.segments:
            raise UnknownSegment(segment_id)

    async def recipients(self, tenant_id: str, segment_id: str) -> AsyncIterator[RecipientRecord]:
        await self.check_segment(tenant_id, segment_id)
        for record in self.segments[(tenant_id, segment_id)]:
            yield record

    async def close(self) -> None:
        pass


class FakeResolver:
    """The directory's address resolution, answering the record's own address (rule `record`)."""

    async def resolve(self, tenant_id: str, correlation_id: str, *, record_email: str | None, **_: object) -> AddressAnswer:
        if record_email is None:
            return AddressAnswer(key="-", email=None, rule=None, reason="no e-mail address in the record")
        return AddressAnswer(key="-", email=record_email, rule="record")
