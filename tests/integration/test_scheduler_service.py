"""The scheduler against the real broker and database, with a clock the test moves and passes the test
runs itself (the timer's own passes are set an hour apart): nothing waits on wall time."""

import asyncio
import io
import uuid
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from docx import Document
from publipost_bus import Bus
from publipost_contracts import CampaignFired, DispatchRequested, MergeCompleted, MergeRequested
from publipost_merge.app import build as build_merge
from publipost_merge.settings import MergeSettings
from publipost_recipient_directory.app import build as build_directory
from publipost_recipient_directory.settings import RecipientDirectorySettings
from publipost_render_pdf.app import build as build_render
from publipost_render_pdf.settings import RenderPdfSettings
from publipost_scheduler.app import build
from publipost_scheduler.domain import Occurrence
from publipost_scheduler.handlers import tick
from publipost_scheduler.settings import SchedulerSettings
from publipost_settings import ServiceSettings
from publipost_template.app import build as build_template
from publipost_template.settings import TemplateSettings
from pypdf import PdfReader

from tests.credentials import credentials
from tests.support import EventTap, wait_until

ACME = credentials("acme")
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # a Tuesday, 09:00 in Paris


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class TargetsOfAcme:
    """Stands for merge, template and the directory when a test does not run them: every mailing, template
    and segment a campaign names is acme's (test_a_campaign_on_another_tenants_... runs the real ones)."""

    async def has_mailing(self, tenant_id: str, mailing_id: str) -> bool:
        return tenant_id == "acme"

    async def has_template(self, tenant_id: str, template_id: str, version: int | None) -> bool:
        return tenant_id == "acme"

    async def has_segment(self, tenant_id: str, segment_id: str) -> bool:
        return tenant_id == "acme"

    async def has_email_template(self, tenant_id: str, email_template_id: str) -> bool:
        return tenant_id == "acme"

    async def has_account(self, tenant_id: str, account_id: str, caller_credentials: dict[str, str]) -> bool:
        return tenant_id == "acme"

    async def close(self) -> None:
        return None


@pytest.fixture
async def scheduler(make_settings, running, infra, namespace):
    clock = Clock()

    async def start():
        settings = make_settings(SchedulerSettings, tick_interval_s=3600)
        return await running(build(settings, clock=clock, targets=TargetsOfAcme()))

    async with EventTap(infra.rabbitmq_url, namespace, DispatchRequested, CampaignFired) as tap:
        yield start, clock, tap


def http(service) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://s")


async def create(service, **fields: object) -> dict:
    body = {
        "name": "December notices",
        "mailing_id": "m-42",
        "recurrence": {"kind": "once", "at": "2026-12-01T10:00:00+01:00"},
        **fields,
    }
    async with http(service) as client:
        response = await client.post("/campaigns", headers=ACME, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def passes(*services) -> int:
    """One pass of each scheduler at the current clock, all at once; how many occurrences they announced."""
    return sum(await asyncio.gather(*(tick(service.components) for service in services)))


async def test_a_campaign_fires_once_at_its_time_with_what_it_says_to_send(scheduler):
    start, clock, tap = scheduler
    service = await start()
    campaign = await create(
        service,
        subject="Your notice {document_number}",
        recipients="ops@acme.test, Boss@ACME.test",
        cc=["archive@acme.test"],
        separate_sends=True,
    )
    assert campaign["next_occurrences"] == ["2026-12-01T10:00:00+01:00"]

    clock.now = START + timedelta(minutes=59)  # 09:59 in Paris: a minute early
    assert await passes(service) == 0

    clock.now = START + timedelta(hours=1, seconds=1)
    assert await passes(service) == 1
    requested = await tap.next(DispatchRequested, timeout=10)
    fired = await tap.next(CampaignFired, timeout=10)
    assert await passes(service) == 0
    assert (requested.mailing_id, requested.tenant_id) == ("m-42", "acme")
    assert requested.subject == "Your notice {document_number}"
    assert requested.to == ["ops@acme.test", "Boss@acme.test"]
    assert requested.cc == ["archive@acme.test"] and requested.separate_sends is True
    assert fired.dispatch_id == requested.dispatch_id
    assert fired.occurrence_at == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    async with http(service) as client:
        stored = (await client.get(f"/campaigns/{campaign['id']}", headers=ACME)).json()
    assert stored["status"] == "done" and stored["next_occurrences"] == []
    assert stored["occurrences"][0]["idempotency_key"] == requested.dispatch_id
    assert stored["occurrences"][0]["announced_at"] is not None


async def test_two_schedulers_racing_for_the_same_occurrences_announce_each_once(scheduler):
    start, clock, tap = scheduler
    first, second = await start(), await start()
    for n in range(5):
        await create(first, name=f"campaign {n}", mailing_id=f"m-{n}")

    clock.now = START + timedelta(hours=2)
    assert await passes(first, second) == 5
    assert await passes(first, second) == 0
    await wait_until(lambda: len(tap.of(DispatchRequested)) == 5, timeout=15)
    await asyncio.sleep(0.3)  # any duplicate copy would be on its way by now

    copies = [e for e in tap.received if isinstance(e, DispatchRequested)]
    assert sorted(e.mailing_id for e in copies) == [f"m-{n}" for n in range(5)]


async def test_a_weekly_campaign_shows_its_next_occurrences_across_the_dst_change(scheduler):
    start, clock, _ = scheduler
    clock.now = datetime(2027, 3, 15, tzinfo=UTC)
    service = await start()
    campaign = await create(service, recurrence={"kind": "weekly", "weekday": 6, "time": "02:30"})
    assert campaign["next_occurrences"][:3] == [
        "2027-03-21T02:30:00+01:00",
        "2027-03-28T03:30:00+02:00",  # 02:30 does not exist that Sunday: once, after the jump
        "2027-04-04T02:30:00+02:00",
    ]


async def test_pause_stops_firing_and_resume_does_not_replay_what_was_missed(scheduler):
    start, clock, _ = scheduler
    service = await start()
    weekly = await create(service, recurrence={"kind": "weekly", "weekday": 1, "time": "10:00"})  # Tuesdays
    async with http(service) as client:
        paused = await client.post(f"/campaigns/{weekly['id']}/pause", headers=ACME)
        assert paused.json()["status"] == "paused" and paused.json()["next_occurrences"] == []
        clock.now = START + timedelta(days=14, hours=3)  # two Tuesdays at 10:00 went by
        assert await passes(service) == 0

        resumed = (await client.post(f"/campaigns/{weekly['id']}/resume", headers=ACME)).json()
        assert await passes(service) == 0
        assert resumed["next_occurrences"][0] == "2026-12-22T10:00:00+01:00"

        clock.now = datetime(2026, 12, 22, 9, 0, 1, tzinfo=UTC)
        assert await passes(service) == 1


@pytest.mark.parametrize(("catch_up", "fired"), [("latest", 1), ("skip", 0)])
async def test_after_downtime_the_catch_up_policy_decides(scheduler, catch_up, fired):
    start, clock, tap = scheduler
    first = await start()
    weekly = await create(
        first, recurrence={"kind": "weekly", "weekday": 1, "time": "10:00"}, catch_up=catch_up
    )
    await first.stop()  # down for three weeks

    clock.now = START + timedelta(days=21, hours=3)
    second = await start()  # its first pass, at start, catches up
    assert await passes(second) == 0
    assert len(await second.components.occurrences.of_campaign(weekly["id"])) == fired

    if fired:
        (requested,) = [await tap.next(DispatchRequested, timeout=10)]
        assert requested.dispatch_id.endswith("20261222T090000Z")  # the latest missed Tuesday, once
    async with http(second) as client:
        stored = (await client.get(f"/campaigns/{weekly['id']}", headers=ACME)).json()
    assert stored["next_occurrences"][0] == "2026-12-29T10:00:00+01:00"


async def test_an_occurrence_claimed_by_a_scheduler_that_died_is_announced_by_another(scheduler):
    start, clock, tap = scheduler
    service = await start()
    ctx = service.components
    created = await create(service, recurrence={"kind": "once", "at": "2027-01-01T00:00:00Z"})
    campaign = await ctx.campaigns.get("acme", created["id"])
    # A replica claimed the occurrence, then died before announcing it.
    occurrence = Occurrence.of(campaign, START, START)
    assert await ctx.occurrences.claim(occurrence)

    clock.now = START + timedelta(seconds=ctx.settings.claim_timeout_s + 1)
    assert await passes(service) == 1
    requested = await tap.next(DispatchRequested, timeout=10)
    assert requested.dispatch_id == occurrence.idempotency_key


@pytest.mark.parametrize(
    ("change", "loc", "message"),
    [
        ({"recurrence": {"kind": "once", "at": "2026-12-01T10:00:00"}}, ["body", "recurrence", "at"], "timezone"),
        ({"recurrence": {"kind": "weekly", "time": "10:00", "timezone": "Mars/Olympus"}}, ["body", "recurrence", "timezone"], "unknown time zone"),
        ({"recurrence": {"kind": "monthly", "time": "10:00"}}, ["body", "recurrence"], "needs day"),
        ({"recipients": "ok@acme.test, not an address"}, ["body", "recipients"], "'not an address'"),
        ({"recipients": "ok@acme.test, jöe@exämple.test"}, ["body", "recipients"], "(only ASCII addresses are accepted"),
        ({"subject": "Notice\x0b{document_number}"}, ["body", "subject"], "control character U+000B"),
        ({"recurrence": {"kind": "once", "at": "2026-11-30T10:00:00+01:00"}}, ["body", "recurrence", "at"], "passed"),
        ({"merge": {"template_id": "t", "segment_id": "s"}}, ["body"], "exactly one of mailing_id"),
    ],
)
async def test_bad_campaigns_are_refused_naming_the_field_and_nothing_is_stored(scheduler, change, loc, message):
    start, _, _ = scheduler
    service = await start()
    body = {"name": "x", "mailing_id": "m", "recurrence": {"kind": "now"}, **change}
    async with http(service) as client:
        response = await client.post("/campaigns", headers=ACME, json=body)
        listed = (await client.get("/campaigns", headers=ACME)).json()
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"][: len(loc)] == loc
    assert message in detail["msg"]
    assert listed == {"items": [], "total": 0, "page": 1, "per_page": 20}


async def test_a_deleted_campaign_stops_and_keeps_its_fired_occurrences(scheduler):
    start, clock, _ = scheduler
    service = await start()
    campaign = await create(service, recurrence={"kind": "weekly", "weekday": 1, "time": "10:00"})
    clock.now = START + timedelta(hours=1, seconds=1)
    assert await passes(service) == 1
    async with http(service) as client:
        assert (await client.delete(f"/campaigns/{campaign['id']}", headers=ACME)).status_code == 204
        assert (await client.get(f"/campaigns/{campaign['id']}", headers=ACME)).status_code == 404
    clock.now = START + timedelta(days=7, hours=1, seconds=1)
    assert await passes(service) == 0
    assert len(await service.components.occurrences.of_campaign(campaign["id"])) == 1


async def test_readiness_reports_the_ticker(scheduler):
    start, _, _ = scheduler
    service = await start()
    async with http(service) as client:
        ready = await client.get("/readyz")
    assert ready.json()["checks"] == {"database": True, "broker": True, "schema": True, "ticker": True}


@pytest.mark.slow
async def test_a_campaign_re_runs_a_merge_on_a_segment_and_sends_the_new_mailing(
    make_settings, running, serve_http, infra, namespace
):
    directory = await running(build_directory(make_settings(RecipientDirectorySettings)))
    directory_url = await serve_http(directory)
    template = await running(build_template(make_settings(TemplateSettings)))
    template_url = await serve_http(template)
    merge = await running(build_merge(make_settings(MergeSettings, template_url=template_url)))
    await running(build_render(make_settings(RenderPdfSettings)))
    clock = Clock()
    settings = make_settings(
        SchedulerSettings,
        tick_interval_s=3600,
        directory_url=directory_url,
        template_url=template_url,
        merge_url=await serve_http(merge),
    )
    scheduler = await running(build(settings, clock=clock))
    async with httpx.AsyncClient(base_url=directory_url, headers=ACME) as http:
        for n in (1, 2):
            await http.put(f"/recipients/C{n}", json={"email": f"c{n}@acme.test", "name": f"Client Segmenton{n}"})
        segment = (await http.post("/segments", json={"name": "both", "customer_numbers": ["C1", "C2"]})).json()
    async with httpx.AsyncClient(base_url=template_url, headers=ACME) as http:
        uploaded = await http.post(
            "/templates",
            data={"name": "Statement"},
            files={"file": ("s.docx", docx("Dear {{ name }}, your statement of {{ date }}."))},
        )
    campaign = {"template_id": uploaded.json()["id"], "segment_id": segment["id"]}

    weekly = {"kind": "weekly", "weekday": 1, "time": "10:00"}  # Tuesdays
    merge_http = httpx.AsyncClient(transport=httpx.ASGITransport(merge.http_app()), base_url="http://m")
    async with EventTap(infra.rabbitmq_url, namespace, DispatchRequested, MergeCompleted) as tap, merge_http:
        await create(
            scheduler, name="Statements", mailing_id=None, merge=campaign, auto_increment_date=True, recurrence=weekly
        )
        for week, day in enumerate(("01/12/2026", "08/12/2026")):  # each Tuesday's run prints its own date
            clock.now = START + timedelta(days=7 * week, hours=1, seconds=1)
            assert await passes(scheduler) == 1
            stamp = f"202612{1 + 7 * week:02d}T090000Z"
            requested = await tap.next(DispatchRequested, lambda e, s=stamp: e.dispatch_id.endswith(s), timeout=120)
            completed = await tap.next(MergeCompleted, lambda e, s=stamp: e.request_id.endswith(s), timeout=10)

            assert requested.mailing_id == completed.mailing_id and completed.documents == 2
            assert completed.name == f"Statements {day}"
            assert requested.document_date == date(2026, 12, 1 + 7 * week)  # the e-mail's {date} too
            documents = (await merge_http.get(f"/mailings/{completed.mailing_id}/documents", headers=ACME)).json()
            content = await merge_http.get(
                f"/mailings/{completed.mailing_id}/documents/{documents['items'][1]['id']}/content", headers=ACME
            )
            text = PdfReader(io.BytesIO(content.content)).pages[0].extract_text()
            assert f"Dear Client Segmenton2, your statement of {day}." in text


def docx(text: str) -> bytes:
    document = Document()
    document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


async def test_a_campaign_on_another_tenants_mailing_template_or_segment_is_refused_and_nothing_stored(
    make_settings, running, serve_http, infra, namespace
):
    """The exploit of issue 14: a campaign of acme naming victim's mailing. The scheduler asks merge, the
    template service and the directory, as acme, whether what the campaign names exists."""
    directory = await running(build_directory(make_settings(RecipientDirectorySettings)))
    directory_url = await serve_http(directory)
    template = await running(build_template(make_settings(TemplateSettings)))
    template_url = await serve_http(template)
    merge = await running(build_merge(make_settings(MergeSettings, template_url=template_url)))
    await running(build_render(make_settings(RenderPdfSettings)))  # the DOCX mailing's page counts
    urls = {"directory_url": directory_url, "template_url": template_url, "merge_url": await serve_http(merge)}
    scheduler = await running(build(make_settings(SchedulerSettings, tick_interval_s=3600, **urls), clock=Clock()))
    victim = credentials("victim")
    async with httpx.AsyncClient(base_url=template_url, headers=victim) as template_http:
        uploaded = await template_http.post(
            "/templates", data={"name": "Statement"}, files={"file": ("s.docx", docx("Dear {{ name }}"))}
        )
        template_id = uploaded.json()["id"]
    async with httpx.AsyncClient(base_url=directory_url, headers=victim) as directory_http:
        await directory_http.put("/recipients/C1", json={"email": "c1@victim.test", "name": "Their customer"})
        segment_id = (await directory_http.post("/segments", json={"name": "all", "customer_numbers": ["C1"]})).json()["id"]
    crm = Bus(make_settings(ServiceSettings, service_name="crm"), publishes=[MergeRequested])
    await crm.start()
    async with EventTap(infra.rabbitmq_url, namespace, MergeCompleted) as tap:
        request = MergeRequested(
            tenant_id="victim",
            correlation_id=str(uuid.uuid4()),
            request_id=str(uuid.uuid4()),
            template_id=template_id,
            records=[{"id": "r1", "name": "Their customer", "customer_number": "C1"}],
            output="docx",
        )
        await crm.publish(request)
        mailing_id = (await tap.next(MergeCompleted, lambda e: e.request_id == request.request_id)).mailing_id
    await crm.stop()

    once = {"kind": "once", "at": "2026-12-01T10:00:00+01:00"}
    on_their_mailing = {"name": "x", "recurrence": once, "mailing_id": mailing_id}
    on_their_template = {"name": "x", "recurrence": once, "merge": {"template_id": template_id, "segment_id": "s"}}
    rerun = {"template_id": template_id, "segment_id": segment_id}
    on_their_segment = {"name": "x", "recurrence": once, "merge": rerun}
    async with http(scheduler) as client:
        refused = [
            await client.post("/campaigns", headers=ACME, json=body) for body in (on_their_mailing, on_their_template)
        ]
        theirs = await client.post("/campaigns", headers=victim, json=on_their_mailing)
        edited = await client.put(f"/campaigns/{theirs.json()['id']}", headers=ACME, json=on_their_mailing)
        acme_campaigns = (await client.get("/campaigns", headers=ACME)).json()["items"]
        # The same template with a segment of nobody's: the segment is checked too.
        no_segment = await client.post("/campaigns", headers=victim, json=on_their_template)
        their_rerun = await client.post("/campaigns", headers=victim, json=on_their_segment)
    assert [r.status_code for r in refused] == [404, 404], [r.text for r in refused]
    assert refused[0].json()["detail"].startswith("mailing_id: no mailing")
    assert refused[1].json()["detail"].startswith("merge.template_id: no template")
    assert acme_campaigns == []
    assert edited.status_code == 404  # acme cannot even see victim's campaign
    assert theirs.status_code == 201, theirs.text  # the owner may
    assert no_segment.status_code == 404 and no_segment.json()["detail"].startswith("merge.segment_id")
    assert their_rerun.status_code == 201, their_rerun.text


async def test_campaigns_are_listed_a_page_at_a_time_like_every_list(scheduler):
    start, _, _ = scheduler
    service = await start()
    for name in ("first", "second", "third"):
        await create(service, name=name)
    async with http(service) as client:
        pages = [(await client.get("/campaigns", headers=ACME, params={"page": n, "per_page": 2})).json() for n in (1, 2)]
    assert [(p["total"], p["page"], p["per_page"], len(p["items"])) for p in pages] == [(3, 1, 2, 2), (3, 2, 2, 1)]
    assert sorted(c["name"] for p in pages for c in p["items"]) == ["first", "second", "third"]
