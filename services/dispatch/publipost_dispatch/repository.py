"""The collections dispatch owns. Writes are conditional updates (compare-and-set on a state or a
holder) rather than find-and-modify, which the embedded database serves far more slowly."""

import asyncio
import heapq
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from publipost_storage import Entities, Repository, once_reachable
from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateMany, UpdateOne, WriteConcern
from pymongo.errors import BulkWriteError, DuplicateKeyError

from .batching import Coalescer
from .domain import (
    FINAL,
    FIRST_HISTORY_WINDOW,
    HOLDING,
    PENDING,
    DeliveryState,
    DispatchStatus,
    history_term,
    wider_history_window,
)
from .model import AcceptedEmail, Delivery, Dispatch, DispatchState, SealedPassword, SendingAccount, TenantSending

DUPLICATE_KEY = 11000
# A few milliseconds' wait lets more sends share a write: the embedded database's cost is per request,
# and per statement within a request. The outcome's wait is part of the double-send window (see
# docs/dispatch.md, "No loss, no double send"): it stays short.
LINGER_S = 0.005
WRITE_LINGER_S = 0.010  # claims and outcomes: see DeliveryRepository


def _now() -> datetime:
    return datetime.now(UTC)


DISPATCHES = Entities(Dispatch)
DELIVERIES = Entities(Delivery)
ACCOUNTS = Entities(SendingAccount)
TENANT_SENDING = Entities(TenantSending)


def _first_written(document: dict[str, Any], set_later: tuple[str, ...]) -> dict[str, Any]:
    """A new record as it was always first written: the fields a later move sets are left out until then."""
    return {name: value for name, value in document.items() if name not in set_later or value}


class DispatchRepository(Repository):
    collection_name = "dispatches"
    indexes = (
        IndexModel([("tenant_id", ASCENDING), ("dispatch_id", ASCENDING)], unique=True),
        IndexModel([("status", ASCENDING)]),
    )
    RECENT_S = 1.0  # how stale a send may see its dispatch: a pause takes effect within this

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self._recent: dict[str, tuple[float, Dispatch]] = {}
        self._errors = Coalescer(self._count_errors, linger_s=LINGER_S)
        self._statuses = Coalescer(self._read_statuses)
        self._reading: dict[str, asyncio.Future[Dispatch | None]] = {}

    async def recent(self, key: str) -> Dispatch | None:
        """The dispatch as read at most RECENT_S ago: every send reads it, and it rarely changes. The
        sends that find it stale wait for one read (each used to make its own). Shared by those sends: read
        it, never change it."""
        seen = self._recent.get(key)
        if seen is not None and time.monotonic() - seen[0] < self.RECENT_S:
            return seen[1]
        reading = self._reading.get(key)
        if reading is None:
            reading = self._reading[key] = asyncio.ensure_future(self._read_recent(key))
        return await asyncio.shield(reading)  # a waiter given up on does not cancel the others' read

    async def _read_recent(self, key: str) -> Dispatch | None:
        try:
            dispatch = await self.get(key)
        finally:
            del self._reading[key]
        if dispatch is not None:
            self._recent[key] = (time.monotonic(), dispatch)
        return dispatch

    async def takes_sends(self, key: str) -> bool:
        """`Dispatch.takes_sends` as stored now, not as `recent` saw it: asked by each e-mail right before
        it goes, so none goes once a pause is stored. The e-mails about to go share one read."""
        return await self._statuses(key)

    async def _read_statuses(self, keys: list[str]) -> list[bool]:
        cursor = self.collection.find({"_id": {"$in": list(set(keys))}}, {"status": 1})
        statuses = {d["_id"]: DispatchStatus(d["status"]) async for d in cursor}
        return [key in statuses and statuses[key] not in HOLDING for key in keys]

    async def create(self, dispatch: Dispatch) -> None:
        """Insert unless present: a dispatch.requested redelivered finds the dispatch it made."""
        try:
            await self.collection.insert_one(_first_written(DISPATCHES.dump(dispatch), Dispatch.SET_LATER))
        except DuplicateKeyError:
            pass

    async def get(self, key: str) -> Dispatch | None:
        return DISPATCHES.load_or_none(await self.collection.find_one({"_id": key}))

    async def find(self, tenant_id: str, dispatch_id: str) -> Dispatch | None:
        found = await self.collection.find_one({"tenant_id": tenant_id, "dispatch_id": dispatch_id})
        return DISPATCHES.load_or_none(found)

    async def move(self, dispatch: Dispatch, from_status: DispatchStatus, *fields: str) -> bool:
        """Store a status move the dispatch made (and the named fields it changed) unless the stored one
        has left `from_status` meanwhile: of two replicas making a move, one does."""
        self._recent.pop(dispatch.id, None)
        changes = DISPATCHES.dump_fields(dispatch, "status", *fields)
        result = await self.collection.update_one({"_id": dispatch.id, "status": from_status}, {"$set": changes})
        return result.modified_count == 1

    async def save(self, dispatch: Dispatch, *fields: str) -> None:
        """Store the named fields, which no other replica changes."""
        await self.collection.update_one({"_id": dispatch.id}, {"$set": DISPATCHES.dump_fields(dispatch, *fields)})

    async def set_failures_file(self, key: str, file_id: str) -> bool:
        """Record the failures file of a dispatch that has none; False when another was recorded first."""
        result = await self.collection.update_one(
            {"_id": key, "failures_file_id": None}, {"$set": {"failures_file_id": file_id}}
        )
        return result.modified_count == 1

    async def count_error(self, key: str) -> int:
        """One more SMTP error since the last resumption; returns the count once it is stored, which may
        include the errors other sends stored meanwhile (never fewer than this one's)."""
        return await self._errors(key)

    async def _count_errors(self, keys: list[str]) -> list[int]:
        """`count_error` for the errors of many sends: one increment per dispatch, then one read."""
        added = Counter(keys)
        await self.collection.bulk_write(
            [UpdateOne({"_id": key}, {"$inc": {"errors": n}}) for key, n in added.items()], ordered=False
        )
        counts = {d["_id"]: d["errors"] async for d in self.collection.find({"_id": {"$in": list(added)}}, {"errors": 1})}
        return [counts.get(key, 0) for key in keys]

    async def resume(self, dispatch: Dispatch) -> Dispatch | None:
        """Store `Dispatch.resume` if the dispatch is still paused (its resumptions counted in the database,
        as two resumes racing both count); the dispatch as stored then, None if it was not paused."""
        self._recent.pop(dispatch.id, None)
        result = await self.collection.update_one(
            {"_id": dispatch.id, "status": DispatchStatus.PAUSED},
            {"$set": DISPATCHES.dump_fields(dispatch, "status", "errors", "reason"), "$inc": {"resumptions": 1}},
        )
        return await self.get(dispatch.id) if result.modified_count == 1 else None

    async def stalled_fan_outs(self, before: datetime) -> AsyncIterator[Dispatch]:
        """Fan-outs that have not moved since `before` and can run again (they kept their request)."""
        query = {"status": DispatchStatus.FANNING_OUT, "progress_at": {"$lt": before}, "request": {"$exists": True}}
        async for document in self.collection.find(query):
            yield DISPATCHES.load(document)

    async def in_status(self, *statuses: DispatchStatus) -> AsyncIterator[DispatchState]:
        query = {"status": {"$in": list(statuses)}}
        async for document in self.collection.find(query, {"_id": 1, "status": 1}):
            yield DispatchState(document["_id"], DispatchStatus(document["status"]))


@dataclass(frozen=True)
class _Claim:
    delivery_id: str
    holder: str
    lease_s: float


@dataclass(frozen=True)
class _Outcome:
    delivery_id: str
    state: DeliveryState
    changes: dict[str, Any]
    # Marks the record it writes: the same outcome written again (its first write landed, its answer was
    # lost with the database) is recognised as stored by this handler.
    finish_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class _Release:
    delivery_id: str
    holder: str
    error: str | None  # None: given back untried (`Delivery.give_back`), its attempt taken off


@dataclass(frozen=True)
class _Accept:
    delivery_id: str
    holder: str
    envelope: int
    accepted: AcceptedEmail


_Write = _Claim | _Outcome | _Release | _Accept


class DeliveryRepository(Repository):
    """One record per (dispatch, document) — or per manual send — whose state moves
    queued → sending → sent / failed. It is also the send history."""

    collection_name = "deliveries"
    indexes = (
        # Each index costs every claim and outcome an update, and on the embedded database even an
        # index whose keys do not change costs each write: two, no more. The first serves a dispatch's
        # own queries (pending, counts, failures, lost sends); the second, multikey, every filter of
        # the history (see domain.history_terms).
        IndexModel([("dispatch_key", ASCENDING), ("state", ASCENDING), ("index", ASCENDING)]),
        IndexModel([("tenant_id", ASCENDING), ("terms", ASCENDING), ("created_at", DESCENDING)]),
    )

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        # Every send makes these calls; many sends in flight share one round trip (see batching.py). The
        # claims, outcomes, releases and accepted e-mails of the sends in flight are one group commit: one
        # update every WRITE_LINGER_S at most, whose wait is part of the double-send window (docs/dispatch.md).
        self._writes = Coalescer(self._write_many, linger_s=WRITE_LINGER_S)
        # Journaled: a database acknowledges a plain write before its log is on disk (mongod's w:1 j:false,
        # SecantusDB alike), and one killed lost the last tens of milliseconds of acknowledged outcomes, whose
        # e-mails the sweep then sent again. One log flush per group costs little; a claim is made durable
        # before its e-mail goes, and an outcome before the send is announced.
        self._journaled = self.collection.with_options(write_concern=WriteConcern(j=True))
        self._claim_reads = Coalescer(self._read_claims)  # apart, so the next group's write need not wait for it
        self._pending = Coalescer(self._pending_among)

    async def ensure_indexes(self) -> None:
        # Records stored while the history had an index per filter lack the filter terms: they get them
        # before that index goes, so a crash half-way leaves it there and the next start goes on.
        if "tenant_id_1_created_at_-1" in await self.collection.index_information():
            await self._add_history_terms()
        await super().ensure_indexes()

    async def _add_history_terms(self) -> None:
        """Give the records written before history terms had filters theirs, so the history finds them."""
        page: list[UpdateOne] = []
        upgrade = "collection scan: once, at the first start after the history's old indexes, to upgrade its records"
        async for doc in self.collection.find({"terms": {"$ne": "*"}}, comment=upgrade):
            terms = DELIVERIES.load(doc).history_terms()
            page.append(UpdateOne({"_id": doc["_id"]}, {"$set": {"terms": terms}}))
            if len(page) == 500:
                await self.collection.bulk_write(page, ordered=False)
                page = []
        if page:
            await self.collection.bulk_write(page, ordered=False)

    async def claim_and_get(self, delivery_id: str, holder: str, lease_s: float) -> Delivery | None:
        """`claim`, then the delivery as stored; None when it was not claimed."""
        claim = _Claim(delivery_id, holder, lease_s)
        token: str = await self._writes(claim)
        claimed: Delivery | None = await self._claim_reads((claim, token))
        return claimed

    async def finish(self, delivery: Delivery) -> bool:
        """Store the outcome `Delivery.record` gave the delivery, once: unless the stored one is final
        already (False: another handler recorded it first). With the database out of reach the outcome is
        kept and written when it answers: once an e-mail is out, an outcome given up would have it sent again."""
        outcome = _Outcome(delivery.id, delivery.state, DELIVERIES.dump_fields(delivery, *Delivery.OUTCOME))
        stored: bool = await once_reachable(lambda: self._writes(outcome), what=f"outcome of {delivery.id}")
        return stored

    async def any_pending(self, dispatch_key: str) -> bool:
        return await self._pending(dispatch_key)

    async def any_queued(self, dispatch_key: str) -> bool:
        found = await self.collection.find_one({"dispatch_key": dispatch_key, "state": DeliveryState.QUEUED}, {"_id": 1})
        return found is not None

    async def add(self, delivery: Delivery) -> None:
        """Insert unless present: a redelivered fan-out never resets a delivery already under way."""
        try:
            await self.collection.insert_one(_first_written(DELIVERIES.dump(delivery), Delivery.SET_LATER))
        except DuplicateKeyError:
            pass

    async def add_many(self, deliveries: list[Delivery]) -> None:
        """Insert those not present yet (a fan-out that runs again after a crash skips the rest)."""
        documents = [_first_written(DELIVERIES.dump(delivery), Delivery.SET_LATER) for delivery in deliveries]
        try:
            await self.collection.insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            if any(error.get("code") != DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
                raise

    async def get(self, delivery_id: str) -> Delivery | None:
        return DELIVERIES.load_or_none(await self.collection.find_one({"_id": delivery_id}))

    async def claim(self, delivery_id: str, holder: str, lease_s: float) -> bool:
        """`Delivery.claim_for` under its condition, in the database: queued, or sending with its lease
        ended. False when the delivery is final or another replica owns it."""
        now = _now()
        change = {
            "$set": {"state": DeliveryState.SENDING, "holder": holder, "lease_until": now + timedelta(seconds=lease_s)},
            "$inc": {"attempts": 1},
        }
        result = await self.collection.update_one({"_id": delivery_id, "state": DeliveryState.QUEUED}, change)
        if result.modified_count == 0:
            result = await self.collection.update_one(
                {"_id": delivery_id, "state": DeliveryState.SENDING, "lease_until": {"$lt": now}}, change
            )
        return result.modified_count == 1

    async def release(self, delivery_id: str, holder: str, error: str) -> None:
        """sending → queued: the send will be tried again."""
        await self._writes(_Release(delivery_id, holder, error))

    async def give_back(self, delivery_id: str, holder: str) -> None:
        """`Delivery.give_back`: sending → queued, its claim's attempt taken off."""
        await self._writes(_Release(delivery_id, holder, None))

    async def accept(self, delivery_id: str, holder: str, envelope: int, accepted: AcceptedEmail) -> None:
        """One e-mail of a delivery is with the server: a retry of the delivery will skip it (so this write,
        like an outcome, waits for a database out of reach)."""
        accept = _Accept(delivery_id, holder, envelope, accepted)
        await once_reachable(lambda: self._writes(accept), what=f"accepted e-mail of {delivery_id}")

    async def renew(self, holder: str, delivery_ids: set[str], lease_s: float) -> None:
        """Extend the lease of the sends this replica is making: a send still alive is never asked again."""
        if delivery_ids:
            await self.collection.update_many(
                {"_id": {"$in": list(delivery_ids)}, "state": DeliveryState.SENDING, "holder": holder},
                {"$set": {"lease_until": _now() + timedelta(seconds=lease_s)}},
            )

    async def _write_many(self, writes: list["_Write"]) -> list[Any]:
        """One group commit: every write of the group in one update command. Each element of the result
        answers the write at its place: for a claim, the group's token (see `_read_claims`); for an
        outcome, whether it was stored (read back only when some write of the group did not apply);
        None for the others."""
        token = uuid.uuid4().hex
        result = await self._journaled.bulk_write(self._statements(writes, token), ordered=False)
        all_applied = result.modified_count == len(writes)
        finishes: dict[str, Any] = {}  # delivery id → the finish id of the outcome stored
        if not all_applied and any(isinstance(w, _Outcome) for w in writes):
            asked = list({w.delivery_id for w in writes if isinstance(w, _Outcome)})
            finishes = {doc["_id"]: doc.get("finish") async for doc in self.collection.find({"_id": {"$in": asked}})}
        answers: list[Any] = []
        for write in writes:
            if isinstance(write, _Claim):
                answers.append(token)
            elif isinstance(write, _Outcome):
                answers.append(all_applied or finishes.get(write.delivery_id) == write.finish_id)
            else:
                answers.append(None)
        return answers

    async def _read_claims(self, claims: list[tuple["_Claim", str]]) -> list[Delivery | None]:
        """The deliveries of claims just written, as stored, in one query: each one its claim took, else
        None (a second copy of the same send among them gets None too)."""
        ids = list({claim.delivery_id for claim, _ in claims})
        found = {doc["_id"]: doc async for doc in self.collection.find({"_id": {"$in": ids}})}
        given: set[str] = set()
        answers: list[Delivery | None] = []
        for claim, token in claims:
            doc = found.get(claim.delivery_id)
            if doc is None or claim.delivery_id in given:
                answers.append(None)
                continue
            given.add(claim.delivery_id)
            if doc.get("claim") == token:
                answers.append(DELIVERIES.load(doc))
            elif doc["state"] in FINAL:
                answers.append(None)
            else:  # not queued: maybe a send whose replica died (its lease ended); that takes a claim of its own
                taken = await self.claim(claim.delivery_id, claim.holder, claim.lease_s)
                answers.append(await self.get(claim.delivery_id) if taken else None)
        return answers

    def _statements(self, writes: list["_Write"], token: str) -> list[UpdateMany | UpdateOne]:
        """The group's claims as one statement, its outcomes as one (SecantusDB pays about a millisecond
        per statement besides each document's own cost), and the rare releases and accepted e-mails."""
        now = _now()
        claims = [w for w in writes if isinstance(w, _Claim)]
        outcomes: dict[str, dict[str, Any]] = {}
        for w in writes:
            if isinstance(w, _Outcome):  # a delivery's first outcome in the group is the one written
                finish = {"state": w.state, "finished_at": now, "lease_until": None, "finish": w.finish_id}
                outcomes.setdefault(w.delivery_id, {**w.changes, **finish})
        statements: list[UpdateMany | UpdateOne] = []
        if claims:
            holder, lease_s = claims[0].holder, claims[0].lease_s  # one replica: one holder and lease
            statements.append(
                UpdateMany(
                    {"_id": {"$in": list({c.delivery_id for c in claims})}, "state": DeliveryState.QUEUED},
                    {
                        "$set": {
                            "state": DeliveryState.SENDING,
                            "holder": holder,
                            "claim": token,
                            "lease_until": now + timedelta(seconds=lease_s),
                        },
                        "$inc": {"attempts": 1},
                    },
                )
            )
        if outcomes:  # each delivery takes its own fields from a $switch on its id
            own_fields = {
                "$switch": {
                    "branches": [
                        {"case": {"$eq": ["$_id", delivery_id]}, "then": {"$literal": fields}}
                        for delivery_id, fields in outcomes.items()
                    ],
                    "default": {},
                }
            }
            statements.append(
                UpdateMany(
                    {"_id": {"$in": list(outcomes)}, "state": {"$in": list(PENDING)}},
                    [{"$replaceWith": {"$mergeObjects": ["$$ROOT", own_fields]}}],
                )
            )
        for w in writes:
            if isinstance(w, _Release):
                queued = {"state": DeliveryState.QUEUED, "lease_until": None, "holder": None}
                release = (
                    {"$set": {**queued, "last_error": w.error}}
                    if w.error is not None
                    else {"$set": queued, "$inc": {"attempts": -1}}
                )
                statements.append(
                    UpdateOne({"_id": w.delivery_id, "state": DeliveryState.SENDING, "holder": w.holder}, release)
                )
            elif isinstance(w, _Accept):
                statements.append(
                    UpdateOne(
                        {"_id": w.delivery_id, "state": DeliveryState.SENDING, "holder": w.holder},
                        {"$set": {f"accepted.{w.envelope}": {"reply": w.accepted.reply, "message_id": w.accepted.message_id}}},
                    )
                )
        return statements

    # SecantusDB walks the (dispatch_key, state, index) index only for an equal state and an equal
    # dispatch: with `$in` on either it reads every delivery of the dispatch, or of the collection (on
    # 10,000 deliveries: 1–3 ms against 500–650 ms, which made a 10,000-document dispatch ten times
    # slower per e-mail than a 1,000-document one). So each state is asked for on its own.

    async def _pending_among(self, dispatch_keys: list[str]) -> list[bool]:
        """For each dispatch, whether any of its documents is still queued or being sent. Indexed lookups
        per dispatch: `distinct` and counts scan, and cost the embedded database 20 times more."""
        pending = {key: await self._any_in(key, PENDING) for key in set(dispatch_keys)}
        return [pending[key] for key in dispatch_keys]

    async def _any_in(self, dispatch_key: str, states: tuple[str, ...]) -> bool:
        for state in states:
            if await self.collection.find_one({"dispatch_key": dispatch_key, "state": state}, {"_id": 1}) is not None:
                return True
        return False

    async def count(self, dispatch_key: str, states: tuple[str, ...]) -> int:
        return sum([await self.collection.count_documents({"dispatch_key": dispatch_key, "state": s}) for s in states])

    async def in_state(
        self, dispatch_key: str, states: tuple[str, ...], *, after: int = -1, limit: int = 0
    ) -> AsyncIterator[Delivery]:
        """In document order: each state's deliveries in index order, merged (read a cursor batch at a time)."""
        cursors = [
            self.collection.find({"dispatch_key": dispatch_key, "state": s, "index": {"$gt": after}})
            .sort("index", ASCENDING)
            .limit(limit)
            for s in states
        ]
        heads: list[tuple[int, int, dict[str, Any]]] = []
        for n, cursor in enumerate(cursors):
            if (first := await anext(cursor, None)) is not None:
                heapq.heappush(heads, (first["index"], n, first))
        given = 0
        try:
            while heads and (not limit or given < limit):
                _, n, delivery = heapq.heappop(heads)
                yield DELIVERIES.load(delivery)
                given += 1
                if (following := await anext(cursors[n], None)) is not None:
                    heapq.heappush(heads, (following["index"], n, following))
        finally:
            for cursor in cursors:
                await cursor.close()

    async def sending(self, dispatch_keys: list[str]) -> list[Delivery]:
        """The sends of these dispatches that a replica holds right now."""
        found: list[Delivery] = []
        for key in dispatch_keys:
            cursor = self.collection.find({"dispatch_key": key, "state": DeliveryState.SENDING})
            found += [DELIVERIES.load(document) async for document in cursor]
        return found

    async def take_back(self, delivery_id: str, holder: str | None) -> bool:
        """`Delivery.take_back` unless another replica's sweep was first: sending → queued for a send whose
        holder is gone, so it can be claimed again."""
        result = await self.collection.update_one(
            {"_id": delivery_id, "state": DeliveryState.SENDING, "holder": holder},
            {"$set": {"state": DeliveryState.QUEUED, "holder": None, "lease_until": None}},
        )
        return result.modified_count == 1

    async def history(self, tenant_id: str, terms: list[str], *, skip: int, limit: int) -> list[Delivery]:
        """Newest first; the sends whose terms (see domain.history_terms) include all of `terms`.

        The embedded database sorts every match in memory rather than walk an index in order, and a
        multikey index serves one of the terms at a time. So the database is asked for the
        likeliest-rare term (the caller lists them rarest first) in a time window, and the other terms
        are checked here. The newest sends are looked for in the last minute first, then in wider
        windows sized from what the last one held (domain.wider_history_window): a page is complete as
        soon as a window holds `skip + limit` matches, and those are the newest."""
        asked, *others = terms or ["*"]
        query: dict[str, Any] = {"tenant_id": tenant_id, "terms": asked}
        now = _now()
        wanted = skip + limit
        window: timedelta | None = FIRST_HISTORY_WINDOW
        while True:
            windowed = query if window is None else {**query, "created_at": {"$gte": now - window}}
            cursor = self.collection.find(windowed).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            found, newest = [], None
            async for doc in cursor:
                newest = newest or doc["created_at"]
                if all(term in doc["terms"] for term in others):
                    found.append(doc)
                    if len(found) == wanted:
                        break
            await cursor.close()
            if len(found) == wanted or window is None:
                return [DELIVERIES.load(doc) for doc in found[skip:]]
            window = wider_history_window(window, None if newest is None else now - newest, len(found), wanted)

    async def sends_of(self, tenant_id: str, document_id: str) -> list[Delivery]:
        cursor = self.collection.find({"tenant_id": tenant_id, "terms": history_term("document", document_id)})
        cursor = cursor.sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        return [DELIVERIES.load(doc) async for doc in cursor]


class ReplicaRepository(Repository):
    """Each replica's last sign of life, so the others can tell a slow send from a dead replica's."""

    collection_name = "replicas"

    async def beat(self, holder: str) -> None:
        await self.collection.update_one({"_id": holder}, {"$set": {"seen_at": _now()}}, upsert=True)

    async def silent(self, holders: set[str], silence_s: float) -> set[str]:
        since = _now() - timedelta(seconds=silence_s)
        alive = {doc["_id"] async for doc in self.collection.find({"_id": {"$in": list(holders)}, "seen_at": {"$gte": since}})}
        return holders - alive


class AccountRepository(Repository):
    """A tenant's SMTP accounts; the password only ever sealed."""

    collection_name = "accounts"
    indexes = (IndexModel([("tenant_id", ASCENDING), ("name", ASCENDING)]),)

    async def add(self, account: SendingAccount) -> None:
        await self.collection.insert_one(ACCOUNTS.dump(account))

    async def get(self, tenant_id: str, account_id: str) -> SendingAccount | None:
        return ACCOUNTS.load_or_none(await self.collection.find_one({"_id": account_id, "tenant_id": tenant_id}))

    async def replace(self, account: SendingAccount) -> bool:
        query = {"_id": account.id, "tenant_id": account.tenant_id}
        result = await self.collection.replace_one(query, ACCOUNTS.dump(account))
        return result.matched_count == 1

    async def all_of(self, tenant_id: str) -> list[SendingAccount]:
        cursor = self.collection.find({"tenant_id": tenant_id}).sort("name", ASCENDING)
        return [ACCOUNTS.load(document) async for document in cursor]

    async def delete(self, tenant_id: str, account_id: str) -> bool:
        return (await self.collection.delete_one({"_id": account_id, "tenant_id": tenant_id})).deleted_count == 1

    async def with_passwords(self) -> AsyncIterator[SealedPassword]:
        """Every account that stores a password, of every tenant: for re-sealing them all (passwords.py)."""
        async for document in self.collection.find(
            {"password_sealed": {"$ne": None}},
            {"tenant_id": 1, "password_sealed": 1},
            comment="collection scan: a maintenance command reads every account once, a few per tenant",
        ):
            yield SealedPassword(document["tenant_id"], document["_id"], document["password_sealed"])

    async def swap_password(self, tenant_id: str, account_id: str, before: str, after: str) -> bool:
        """Replace the sealed password unless the account was saved since it was read (its edit then sealed
        the password anew itself)."""
        result = await self.collection.update_one(
            {"_id": account_id, "tenant_id": tenant_id, "password_sealed": before},
            {"$set": {"password_sealed": after}},
        )
        return result.modified_count == 1


class SendCounterRepository(Repository):
    """Messages an account sent in one second and in one day, shared by every replica."""

    collection_name = "send_counters"
    indexes = (IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0),)

    async def add(self, changes: dict[str, tuple[int, datetime]]) -> None:
        """Add to each counter (id → (n, when it expires)) in one write."""
        await self.collection.bulk_write(
            [
                UpdateOne({"_id": counter_id}, {"$inc": {"n": n}, "$setOnInsert": {"expires_at": expires_at}}, upsert=True)
                for counter_id, (n, expires_at) in changes.items()
            ],
            ordered=False,
        )

    async def add_and_read(self, changes: dict[str, tuple[int, datetime]]) -> dict[str, int]:
        """`add`, then each counter's total, which may include what other replicas added meanwhile (never less)."""
        await self.add(changes)
        totals = {doc["_id"]: doc["n"] async for doc in self.collection.find({"_id": {"$in": list(changes)}}, {"n": 1})}
        return {counter_id: totals.get(counter_id, n) for counter_id, (n, _) in changes.items()}


class ConnectionLeaseRepository(Repository):
    """Slot i of an account's connections is held by one replica at a time, until its lease ends. A
    replica that finds every slot held says it is waiting, so holders can give it its share."""

    collection_name = "connection_leases"
    indexes = (IndexModel([("holder", ASCENDING)]), IndexModel([("account_id", ASCENDING)]))

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self.waiting = db["connection_waits"]

    async def ensure_indexes(self) -> None:
        await super().ensure_indexes()
        await self.waiting.create_indexes([IndexModel([("account_id", ASCENDING), ("until", ASCENDING)])])

    async def wait(self, account_id: str, holder: str, for_s: float) -> None:
        """`holder` has sends waiting for one of the account's connections, for the next `for_s` seconds."""
        await self.waiting.update_one(
            {"_id": f"{account_id}:{holder}"},
            {"$set": {"account_id": account_id, "holder": holder, "until": _now() + timedelta(seconds=for_s)}},
            upsert=True,
        )

    async def others_waiting(self, account_id: str, holder: str) -> int:
        query = {"account_id": account_id, "until": {"$gte": _now()}, "holder": {"$ne": holder}}
        return await self.waiting.count_documents(query)

    @staticmethod
    def slot_id(account_id: str, slot: int) -> str:
        return f"{account_id}:{slot}"

    async def acquire(self, account_id: str, slots: int, holder: str, lease_s: float) -> int | None:
        """A free slot (never taken, or its holder's lease ended) for `holder`; None when all are held."""
        now = _now()
        lease = {"account_id": account_id, "holder": holder, "expires_at": now + timedelta(seconds=lease_s)}
        held = {doc["_id"]: doc async for doc in self.collection.find({"account_id": account_id})}
        for slot in range(slots):
            slot_id = self.slot_id(account_id, slot)
            current = held.get(slot_id)
            if current is None:
                try:
                    await self.collection.insert_one({"_id": slot_id, **lease})
                    return slot
                except DuplicateKeyError:
                    continue
            if current["expires_at"] < now:
                taken = await self.collection.update_one(
                    {"_id": slot_id, "expires_at": current["expires_at"]}, {"$set": lease}
                )
                if taken.modified_count == 1:
                    return slot
        return None

    async def renew(self, holder: str, slot_ids: list[str], lease_s: float) -> None:
        """Extend `holder`'s leases on the slots `slot_ids` (see slot_id), those it has connections on."""
        if slot_ids:
            await self.collection.update_many(
                {"_id": {"$in": slot_ids}, "holder": holder}, {"$set": {"expires_at": _now() + timedelta(seconds=lease_s)}}
            )

    async def release(self, account_id: str, slot: int, holder: str) -> None:
        await self.collection.delete_one({"_id": self.slot_id(account_id, slot), "holder": holder})


class TenantSendingRepository(Repository):
    """Per-tenant sending choices (one document per tenant, by its id)."""

    collection_name = "tenant_sending"

    async def get(self, tenant_id: str) -> TenantSending:
        """The tenant's choices; the defaults for a tenant that made none."""
        stored = await self.collection.find_one({"_id": tenant_id})
        return TenantSending(id=tenant_id) if stored is None else TENANT_SENDING.load(stored)

    async def save(self, choices: TenantSending) -> None:
        changes = TENANT_SENDING.dump_fields(choices, "email_enabled", "sender_prefix")
        await self.collection.update_one({"_id": choices.id}, {"$set": changes}, upsert=True)
