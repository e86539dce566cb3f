"""How the services' HTTP APIs say no, as a caller meets it: a database out of reach is a 503 to retry, not
a 500; and each service's OpenAPI document declares every error its routes answer, with the body."""

import httpx
import pytest
from publipost_dispatch.app import build as build_dispatch
from publipost_dispatch.settings import DispatchSettings
from publipost_localstack.processes import free_port
from publipost_merge.app import build as build_merge
from publipost_merge.settings import MergeSettings
from publipost_recipient_directory.app import build as build_directory
from publipost_recipient_directory.settings import RecipientDirectorySettings
from publipost_render_pdf.app import build as build_render
from publipost_render_pdf.settings import RenderPdfSettings
from publipost_scheduler.app import build as build_scheduler
from publipost_scheduler.settings import SchedulerSettings
from publipost_template.app import build as build_template
from publipost_template.settings import TemplateSettings

from tests.credentials import credentials

SERVICES = [
    (build_template, TemplateSettings),
    (build_directory, RecipientDirectorySettings),
    (build_merge, MergeSettings),
    (build_render, RenderPdfSettings),
    (build_dispatch, DispatchSettings),
    (build_scheduler, SchedulerSettings),
]


def client(service) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://s")


async def test_a_route_that_meets_the_database_out_of_reach_answers_503_with_a_time_to_retry(make_settings):
    nothing_listens = f"mongodb://127.0.0.1:{free_port()}/"
    service = build_merge(make_settings(MergeSettings, mongodb_url=nothing_listens))

    async with client(service) as http:
        response = await http.get("/mailings", headers=credentials("acme"), timeout=30)

    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert response.json() == {"detail": "the database is out of reach for now; try again shortly"}


@pytest.mark.parametrize(("build", "settings_class"), SERVICES)
def test_every_route_declares_the_errors_it_answers_with_their_bodies(make_settings, build, settings_class):
    document = build(make_settings(settings_class)).http_app().openapi()
    schemas = document["components"]["schemas"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(document["components"]["securitySchemes"])

    for path, operations in document["paths"].items():
        if path in ("/healthz", "/metrics"):
            continue
        for method, operation in operations.items():
            responses = operation["responses"]
            where = f"{method.upper()} {path}"
            assert "503" in responses, where
            if operation.get("security"):
                assert {"401", "403"} <= set(responses), where
            if "{" in path:
                assert "404" in responses, where
            if "requestBody" in operation:
                assert "413" in responses, where
            for code, response in responses.items():
                if code.startswith(("4", "5")):
                    reference = response["content"]["application/json"]["schema"]["$ref"]
                    assert reference.rsplit("/", 1)[-1] in schemas, f"{where} {code}"
