"""The scheduler against the real broker and database, with a clock the test moves."""

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from publipost_contracts import CampaignFired, DispatchRequested
from publipost_scheduler.app import build
from publipost_scheduler.domain import Occurrence
from publipost_scheduler.settings import SchedulerSettings

from tests.support import EventTap, wait_until

ACME = {"X-Tenant-Id": "acme"}
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def scheduler(make_settings, running, infra, namespace):
    clock = Clock()

    async def start():
        return await running(build(make_settings(SchedulerSettings, tick_interval_s=0.05), clock=clock))

    async with EventTap(infra.rabbitmq_url, namespace, DispatchRequested, CampaignFired) as tap:
        yield start, clock, tap


def http(service) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://s")


async def create(service, **fields: object) -> dict:
    body = {"name": "December notices", "mailing_id": "m-42", "once_at": "2026-12-01T10:00:00+01:00", **fields}
    async with http(service) as client:
        response = await client.post("/campaigns", headers=ACME, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_campaign_fires_once_at_its_time_with_what_it_says_to_send(scheduler):
    start, clock, tap = scheduler
    service = await start()
    campaign = await create(service, subject="Your notice {document_number}", cc=["archive@acme.test"])

    clock.now = START + timedelta(minutes=59)  # 08:59 UTC: a minute before 10:00+01:00
    await asyncio.sleep(0.3)
    assert tap.of(DispatchRequested) == []

    clock.now = START + timedelta(hours=1, seconds=1)
    requested = await tap.next(DispatchRequested, timeout=10)
    fired = await tap.next(CampaignFired, timeout=10)
    await asyncio.sleep(0.3)  # later ticks must not fire it again

    assert len(tap.of(DispatchRequested)) == 1
    assert requested.mailing_id == "m-42"
    assert requested.subject == "Your notice {document_number}"
    assert requested.cc == ["archive@acme.test"]
    assert requested.tenant_id == "acme"
    assert fired.dispatch_id == requested.dispatch_id
    assert fired.occurrence_at == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    async with http(service) as client:
        stored = (await client.get(f"/campaigns/{campaign['id']}", headers=ACME)).json()
    assert stored["status"] == "done"
    assert stored["occurrences"][0]["dispatch_id"] == requested.dispatch_id
    assert stored["occurrences"][0]["announced_at"] is not None


async def test_two_schedulers_racing_for_the_same_occurrence_announce_it_once(scheduler):
    start, clock, tap = scheduler
    first, _second = await start(), await start()
    for n in range(5):
        await create(first, name=f"campaign {n}", mailing_id=f"m-{n}")

    clock.now = START + timedelta(hours=2)
    await wait_until(lambda: len(tap.of(DispatchRequested)) == 5, timeout=15)
    await asyncio.sleep(0.5)

    copies = [e for e in tap.received if isinstance(e, DispatchRequested)]
    assert sorted(e.mailing_id for e in copies) == [f"m-{n}" for n in range(5)]


async def test_a_paused_campaign_waits_and_fires_when_resumed(scheduler):
    start, clock, tap = scheduler
    service = await start()
    campaign = await create(service)
    async with http(service) as client:
        paused = await client.post(f"/campaigns/{campaign['id']}/pause", headers=ACME)
        clock.now = START + timedelta(hours=3)
        await asyncio.sleep(0.3)
        assert paused.json()["status"] == "paused"
        assert tap.of(DispatchRequested) == []

        await client.post(f"/campaigns/{campaign['id']}/resume", headers=ACME)
        await tap.next(DispatchRequested, timeout=10)
        again = await client.post(f"/campaigns/{campaign['id']}/pause", headers=ACME)
    assert again.status_code == 409
    assert "already run" in again.json()["detail"]


async def test_an_occurrence_claimed_by_a_scheduler_that_died_is_announced_by_another(scheduler):
    start, clock, tap = scheduler
    service = await start()
    ctx = service.components
    campaign = await ctx.campaigns.get("acme", (await create(service, once_at="2027-01-01T00:00:00Z"))["id"])
    # A replica claimed the occurrence, then died before announcing it.
    await ctx.occurrences.claim(Occurrence(campaign["_id"], START), campaign, START)

    clock.now = START + timedelta(seconds=ctx.settings.claim_timeout_s + 1)
    requested = await tap.next(DispatchRequested, timeout=10)
    assert requested.dispatch_id == Occurrence(campaign["_id"], START).dispatch_id


async def test_a_time_without_time_zone_is_refused_naming_the_field(scheduler):
    start, _, _ = scheduler
    service = await start()
    async with http(service) as client:
        response = await client.post(
            "/campaigns", headers=ACME, json={"name": "x", "mailing_id": "m", "once_at": "2026-12-01T10:00:00"}
        )
        listed = (await client.get("/campaigns", headers=ACME)).json()
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "once_at"]
    assert listed == []


async def test_readiness_reports_the_ticker(scheduler):
    start, _, _ = scheduler
    service = await start()
    async with http(service) as client:
        ready = await wait_until(lambda: _ready(client), timeout=5)
    assert ready["checks"] == {"database": True, "broker": True, "ticker": True}


async def _ready(client: httpx.AsyncClient) -> dict | None:
    response = await client.get("/readyz")
    return response.json() if response.status_code == 200 else None
