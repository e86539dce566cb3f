"""A campaign on a published mailing, as a person sees it, against the real services: every occurrence
sends the documents, the mailing stays sendable, each occurrence shows its outcome or its error, and the
history finds the sends by the campaign's document type (issue 16, point 1)."""

import uuid
from datetime import timedelta

import httpx
import pytest
from publipost_bus import Bus
from publipost_contracts import DispatchCompleted, MergeCompleted, MergeRequested
from publipost_dispatch.app import build as build_dispatch
from publipost_dispatch.settings import DispatchSettings
from publipost_merge.app import build as build_merge
from publipost_merge.settings import MergeSettings
from publipost_recipient_directory.app import build as build_directory
from publipost_recipient_directory.settings import RecipientDirectorySettings
from publipost_render_pdf.app import build as build_render
from publipost_render_pdf.settings import RenderPdfSettings
from publipost_scheduler.app import build as build_scheduler
from publipost_scheduler.settings import SchedulerSettings
from publipost_settings import ServiceSettings
from publipost_template.app import build as build_template
from publipost_template.settings import TemplateSettings

from tests.integration.test_dispatch_product import account
from tests.integration.test_dispatch_service import ACCOUNT_KEY, SAMPLE, TENANT, record
from tests.integration.test_scheduler_service import START, Clock, passes
from tests.support import EventTap, wait_until

pytestmark = pytest.mark.slow


async def test_a_weekly_campaign_sends_its_mailing_every_week_and_shows_each_outcome(
    make_settings, running, serve_http, infra, namespace, mailbox
):
    template = await running(build_template(make_settings(TemplateSettings)))
    template_url = await serve_http(template)
    merge = await running(build_merge(make_settings(MergeSettings, template_url=template_url)))
    merge_url = await serve_http(merge)
    await running(build_render(make_settings(RenderPdfSettings)))
    await running(build_directory(make_settings(RecipientDirectorySettings)))  # dispatch resolves addresses
    dispatch = await running(
        build_dispatch(
            make_settings(
                DispatchSettings,
                merge_url=merge_url,
                template_url=template_url,
                smtp_host=mailbox.host,
                smtp_port=mailbox.port,
                account_key=ACCOUNT_KEY,
            )
        )
    )
    clock = Clock()
    urls = {"merge_url": merge_url, "template_url": template_url, "dispatch_url": await serve_http(dispatch)}
    scheduler = await running(build_scheduler(make_settings(SchedulerSettings, tick_interval_s=3600, **urls), clock=clock))
    template_http = httpx.AsyncClient(base_url=template_url, headers=TENANT)
    merge_http = httpx.AsyncClient(base_url=merge_url, headers=TENANT)
    dispatch_http = httpx.AsyncClient(transport=httpx.ASGITransport(dispatch.http_app()), base_url="http://d")
    scheduler_http = httpx.AsyncClient(transport=httpx.ASGITransport(scheduler.http_app()), base_url="http://s")
    uploaded = await template_http.post(
        "/templates", data={"name": "Staff list", "custom_fields": "signatory"}, files={"file": ("l.docx", SAMPLE.read_bytes())}
    )
    email_template = await template_http.post(
        "/email-templates", json={"name": "Staff", "subject": "Staff list {document_number} of {date}", "body_text": "Here it is.\n"}
    )
    assert email_template.status_code == 201, email_template.text
    sending = await dispatch_http.post(
        "/accounts", headers=TENANT, json=account(mailbox.port, shared_with_roles=["operator", "integrator"])
    )
    assert sending.status_code == 201, sending.text

    crm = Bus(make_settings(ServiceSettings, service_name="crm"), publishes=[MergeRequested])
    await crm.start()
    async with EventTap(infra.rabbitmq_url, namespace, MergeCompleted, DispatchCompleted) as tap:

        async def published(output: str) -> str:
            request = MergeRequested(
                tenant_id="acme",
                correlation_id=str(uuid.uuid4()),
                request_id=str(uuid.uuid4()),
                template_id=uploaded.json()["id"],
                name="Staff list",
                records=[record(1, "one@example.test"), record(2, "two@example.test")],
                custom_fields={"signatory": "Jane Manager"},
                output=output,
            )
            await crm.publish(request)
            return (await tap.next(MergeCompleted, lambda e: e.request_id == request.request_id, timeout=90)).mailing_id

        mailing_id, docx_mailing_id = await published("pdf"), await published("docx")
        weekly = {"kind": "weekly", "weekday": 1, "time": "10:00"}  # Tuesdays, 10:00 in Paris
        terms = {
            "name": "Staff list every Tuesday",
            "document_type": "staff_list",
            "recurrence": weekly,
            "mailing_id": mailing_id,
            "account_id": sending.json()["id"],
            "email_template_id": email_template.json()["id"],
            "auto_increment_date": True,  # each Tuesday's e-mails name that Tuesday
        }
        # What the campaign names is checked when it is saved, the account for the one who saves it.
        unknown = [
            await scheduler_http.post("/campaigns", headers=TENANT, json={**terms, name: "nope"})
            for name in ("account_id", "email_template_id")
        ]
        assert [(r.status_code, r.json()["detail"].split(":")[0]) for r in unknown] == [
            (404, "account_id"),
            (404, "email_template_id"),
        ]
        created = await scheduler_http.post("/campaigns", headers=TENANT, json=terms)
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]
        on_docx = await scheduler_http.post(
            "/campaigns", headers=TENANT, json={**terms, "name": "Word only", "mailing_id": docx_mailing_id}
        )
        assert on_docx.status_code == 201, on_docx.text

        for week, tuesday in enumerate(("20261201T090000Z", "20261208T090000Z")):
            clock.now = START + timedelta(days=7 * week, hours=1, seconds=1)
            assert await passes(scheduler) == 2
            key = f"campaign-{campaign_id}-{tuesday}"
            await tap.next(DispatchCompleted, lambda e, key=key: e.dispatch_id == key, timeout=60)
            await wait_until(lambda sent=2 * (week + 1): len(mailbox.messages()) == sent, timeout=30)
    await crm.stop()

    # Both Tuesdays sent both documents, through the campaign's account and e-mail template.
    assert len(mailbox.messages()) == 4
    mailing = (await merge_http.get(f"/mailings/{mailing_id}")).json()
    assert mailing["status"] == "ready", mailing  # still sendable, for the next Tuesday

    async def occurrences(campaign: str) -> list[dict]:
        return (await scheduler_http.get(f"/campaigns/{campaign}", headers=TENANT)).json()["occurrences"]

    async def outcomes(campaign: str) -> list[dict] | None:
        fired = await occurrences(campaign)
        return fired if all(o["outcome"] != "announced" for o in fired) else None

    sent = await wait_until(lambda: outcomes(campaign_id), timeout=15)
    assert [(o["outcome"], o["sent"], o["failed"], o["error"]) for o in sent] == [("sent", 2, 0, None)] * 2, sent
    refused = await wait_until(lambda: outcomes(on_docx.json()["id"]), timeout=15)
    assert {o["outcome"] for o in refused} == {"refused"}
    assert len(refused) == 2 and all("only PDF mailings can be e-mailed" in (o["error"] or "") for o in refused), refused

    history = (await dispatch_http.get("/history", params={"document_type": "staff_list"}, headers=TENANT)).json()
    assert len(history["items"]) == 4 and {e["status"] for e in history["items"]} == {"sent"}
    assert sorted(e["subject"] for e in history["items"]) == [
        f"Staff list INV-000{n} of {day}/12/2026" for n in (1, 2) for day in ("01", "08")
    ]
    for client in (template_http, merge_http, dispatch_http, scheduler_http):
        await client.aclose()
