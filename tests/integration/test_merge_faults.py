"""merge when a message is lost: a mailing whose PDFs stop coming is found and moves on by itself."""

import uuid
from pathlib import Path

import httpx
import pytest
from publipost_bus import Bus
from publipost_contracts import MergeCompleted, MergeRequested
from publipost_merge.app import build as build_merge
from publipost_merge.settings import MergeSettings
from publipost_render_pdf.app import build as build_render
from publipost_render_pdf.settings import RenderPdfSettings
from publipost_settings import ServiceSettings
from publipost_template.app import build as build_template
from publipost_template.settings import TemplateSettings

from tests.credentials import credentials
from tests.support import EventTap, sample_record, wait_until

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).parents[2] / "samples" / "letter.docx"
TENANT = credentials("acme")


async def test_a_mailing_whose_pdf_requests_were_lost_is_resumed_by_the_sweep(
    make_settings, running, serve_http, infra, namespace
):
    template = await running(build_template(make_settings(TemplateSettings)))
    template_url = await serve_http(template)
    merge = await running(
        build_merge(make_settings(MergeSettings, template_url=template_url, stall_after_s=3, sweep_interval_s=0.5))
    )
    async with httpx.AsyncClient(base_url=template_url, headers=TENANT) as http:
        uploaded = await http.post(
            "/templates",
            data={"name": "Notice", "custom_fields": "signatory"},
            files={"file": ("l.docx", SAMPLE.read_bytes())},
        )
    system = Bus(make_settings(ServiceSettings, service_name="crm"), publishes=[MergeRequested])
    await system.start()
    event = MergeRequested(
        tenant_id="acme",
        correlation_id=str(uuid.uuid4()),
        request_id=str(uuid.uuid4()),
        template_id=uploaded.json()["id"],
        records=[sample_record(n) for n in (1, 2, 3)],
        custom_fields={"signatory": "Jane Manager"},
        output="pdf",
    )
    merge_http = httpx.AsyncClient(transport=httpx.ASGITransport(merge.http_app()), base_url="http://merge")
    try:
        async with EventTap(infra.rabbitmq_url, namespace, MergeCompleted) as tap:
            # render-pdf is not running: its queue does not exist, the requests for PDFs go nowhere.
            await system.publish(event)

            async def converting():
                page = (await merge_http.get("/mailings", headers=TENANT)).json()
                return page["items"] if page["items"] and page["items"][0]["status"] == "converting" else None

            mailing = (await wait_until(converting))[0]
            await running(build_render(make_settings(RenderPdfSettings)))

            completed = await tap.next(MergeCompleted, lambda e: e.request_id == event.request_id, timeout=90)
        documents = (await merge_http.get(f"/mailings/{mailing['id']}/documents", headers=TENANT)).json()["items"]
    finally:
        await merge_http.aclose()
        await system.stop()

    assert (completed.mailing_id, completed.status, completed.documents, completed.failed) == (
        mailing["id"],
        "ready",
        3,
        0,
    )
    assert [d["status"] for d in documents] == ["converted"] * 3
