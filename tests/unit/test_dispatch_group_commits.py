"""The group commits of a send, without a broker or a database: in-memory fakes stand in for both."""

import asyncio
import time
from datetime import datetime

import pytest
from bson import ObjectId
from publipost_dispatch.completions import CompletionCheck
from publipost_dispatch.domain import Limits
from publipost_dispatch.limits import DailyCapReached, SendPermits
from publipost_dispatch.pdfs import PdfReader
from publipost_storage import BlobNotFound

# --- completion checks ------------------------------------------------------------------------


async def test_no_completion_check_while_the_replica_still_sends_documents_of_the_dispatch():
    """A check costs queries: it used to run every 0.1 s for as long as outcomes arrived."""
    checked: list[str] = []

    async def check(key: str) -> None:
        checked.append(key)

    completions = CompletionCheck(check)
    completions.DELAY_S = 0.01
    with completions.sending("d1"):
        with completions.sending("d1"):
            completions.soon("d1")  # an outcome stored while another send of d1 is still going
            await asyncio.sleep(0.05)
        assert checked == [] and completions.busy("d1")
        completions.soon("d1")
        await asyncio.sleep(0.05)
        assert checked == []
    await asyncio.sleep(0.05)  # the last send of d1 ended: one check, now
    assert checked == ["d1"] and not completions.busy("d1")


async def test_a_dispatch_with_nothing_in_flight_here_is_checked_after_the_delay():
    checked: list[str] = []

    async def check(key: str) -> None:
        checked.append(key)

    completions = CompletionCheck(check)
    completions.DELAY_S = 0.01
    with completions.sending("other"):
        completions.soon("d2")
        completions.soon("d2")  # a second outcome within the delay shares the check
        await completions.wait()
    assert checked == ["d2"]


# --- rate and daily cap -----------------------------------------------------------------------


class FakeCounters:
    """SendCounterRepository in memory, counting its round trips."""

    def __init__(self) -> None:
        self.n: dict[str, int] = {}
        self.round_trips = 0

    async def add(self, changes: dict[str, tuple[int, datetime]]) -> None:
        await asyncio.sleep(0)  # the round trip: other sends go on meanwhile
        self.round_trips += 1
        for counter_id, (n, _) in changes.items():
            self.n[counter_id] = self.n.get(counter_id, 0) + n

    async def add_and_read(self, changes: dict[str, tuple[int, datetime]]) -> dict[str, int]:
        await self.add(changes)
        self.round_trips += 1
        return {counter_id: self.n[counter_id] for counter_id in changes}


async def test_permits_for_the_sends_waiting_cost_two_round_trips_for_both_counters():
    counters = FakeCounters()
    permits = SendPermits(counters, "acct", Limits(connections=4, rate_per_s=100, daily_cap=1000))  # type: ignore[arg-type]
    await asyncio.gather(*(permits.take() for _ in range(10)))
    day = next(v for k, v in counters.n.items() if ":day:" in k)
    second = sum(v for k, v in counters.n.items() if ":s:" in k)
    assert day == second == 10
    assert counters.round_trips <= 4  # the first send's batch, then one for the nine waiting behind it


async def test_two_replicas_never_grant_more_than_the_daily_cap_together():
    counters = FakeCounters()
    replicas = [SendPermits(counters, "acct", Limits(connections=4, rate_per_s=50, daily_cap=7)) for _ in range(2)]  # type: ignore[arg-type]
    outcomes = await asyncio.gather(*(r.take() for r in replicas for _ in range(6)), return_exceptions=True)
    granted = [o for o in outcomes if o is None]
    assert len(granted) == 7
    assert all(isinstance(o, DailyCapReached) for o in outcomes if o is not None)
    assert next(v for k, v in counters.n.items() if ":day:" in k) == 7  # what was not granted was given back


async def test_the_rate_holds_across_replicas_sharing_the_counters():
    counters = FakeCounters()
    replicas = [SendPermits(counters, "acct", Limits(connections=4, rate_per_s=5)) for _ in range(2)]  # type: ignore[arg-type]
    started = time.time()
    second = int(started)
    times: list[float] = []

    async def send(permits: SendPermits) -> None:
        await permits.take()
        times.append(time.time())

    await asyncio.gather(*(send(r) for r in replicas for _ in range(6)))
    per_second: dict[int, int] = {}
    for t in times:
        per_second[int(t)] = per_second.get(int(t), 0) + 1
    assert all(n <= 5 for n in per_second.values()), per_second
    assert sum(per_second.values()) == 12 and min(per_second) == second


# --- PDF reads --------------------------------------------------------------------------------


class FakeBlobs:
    """BlobStore in memory, counting its round trips (`read` one, `get_many` two)."""

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs
        self.round_trips = 0

    async def read(self, files: list[dict]) -> dict[str, bytes]:
        await asyncio.sleep(0)
        self.round_trips += 1
        found = {str(f["_id"]): self.blobs.get(str(f["_id"]), b"") for f in files}
        return {blob_id: data for (blob_id, data), f in zip(found.items(), files) if len(data) == f["length"]}

    async def get_many(self, blob_ids: list[str], *, tenant_id: str) -> dict[str, bytes]:
        await asyncio.sleep(0)
        self.round_trips += 2
        return {blob_id: self.blobs[blob_id] for blob_id in blob_ids if blob_id in self.blobs}


async def test_pdfs_of_known_length_are_read_together_in_one_round_trip():
    ids = [str(ObjectId()) for _ in range(5)]
    blobs = FakeBlobs({blob_id: f"%PDF {blob_id}".encode() for blob_id in ids})
    reader = PdfReader(blobs)  # type: ignore[arg-type]
    pdfs = await asyncio.gather(*(reader.get("acme", blob_id, len(blobs.blobs[blob_id])) for blob_id in ids))
    assert pdfs == [blobs.blobs[blob_id] for blob_id in ids]
    assert blobs.round_trips == 1


async def test_a_pdf_replaced_since_the_fan_out_is_read_through_its_file_entry_and_a_missing_one_fails():
    replaced, missing = str(ObjectId()), str(ObjectId())
    blobs = FakeBlobs({replaced: b"%PDF a longer version"})
    reader = PdfReader(blobs)  # type: ignore[arg-type]
    got = await reader.get("acme", replaced, 8)
    assert got == b"%PDF a longer version"
    with pytest.raises(BlobNotFound):
        await reader.get("acme", missing, 8)
    with pytest.raises(BlobNotFound):
        await reader.get("acme", "not-an-object-id", None)
