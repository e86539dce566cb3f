"""What the running services show operators (issue 19, point 5): dispatch's e-mail and SMTP figures move as it
sends, and a service's HTTP calls are logged one line each, by route template, without query or headers."""

import uuid

import httpx
import pytest
import structlog
from prometheus_client import REGISTRY
from publipost_contracts import DispatchCompleted
from publipost_template.app import build as build_template
from publipost_template.settings import TemplateSettings

from tests.credentials import credentials
from tests.integration.test_dispatch_service import (  # noqa: F401 - flow is the fixture of those tests
    dispatch,
    flow,
    merge_mailing,
    record,
)


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.slow
async def test_a_dispatch_moves_the_emails_by_outcome_and_the_smtp_latency_of_its_account(flow):  # noqa: F811
    before = {
        "sent": _value("publipost_dispatch_emails_total", outcome="sent", account="default"),
        "failed": _value("publipost_dispatch_emails_total", outcome="failed", account="default"),
        "smtp": _value("publipost_dispatch_smtp_seconds_count", account="default"),
    }
    mailing = await merge_mailing(flow, [record(1, "one@example.test"), record(2, "two@reject.test")])
    request = await dispatch(flow, mailing.mailing_id)
    completed = await flow["tap"].next(DispatchCompleted, lambda e: e.dispatch_id == request.dispatch_id, timeout=60)
    assert (completed.sent, completed.failed) == (1, 1)

    assert _value("publipost_dispatch_emails_total", outcome="sent", account="default") == before["sent"] + 1
    assert _value("publipost_dispatch_emails_total", outcome="failed", account="default") == before["failed"] + 1
    assert _value("publipost_dispatch_smtp_seconds_count", account="default") >= before["smtp"] + 2


async def test_a_service_logs_each_request_once_by_route_template_without_query_or_credentials(make_settings, running):
    template = await running(build_template(make_settings(TemplateSettings)))
    headers = credentials("acme")
    missing = str(uuid.uuid4())
    with structlog.testing.capture_logs() as lines:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(template.http_app()), base_url="http://t") as http:
            answer = await http.get(f"/templates/{missing}?api_key=not-to-be-logged", headers=headers)
            assert answer.status_code == 404
            assert (await http.get("/templates/x", headers={"Authorization": "Bearer forged"})).status_code == 401

    access = [line for line in lines if line["event"] == "http request"]
    assert [(line["method"], line["route"], line["status"]) for line in access] == [
        ("GET", "/templates/{template_id}", 404),
        ("GET", "/templates/{template_id}", 401),
    ]
    assert access[0]["tenant_id"] == "acme" and "tenant_id" not in access[1]
    text = repr(access)
    assert missing not in text and "not-to-be-logged" not in text and "forged" not in text
    assert headers["Authorization"].split()[-1] not in text
