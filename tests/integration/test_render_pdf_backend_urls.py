"""A tenant's conversion backend, as its admin sets it over HTTP: only an address render-pdf may reach."""

import httpx
import pytest
from publipost_render_pdf.app import build as build_render
from publipost_render_pdf.settings import RenderPdfSettings

TENANT = {"X-Tenant-Id": "acme"}


def client(service) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(service.http_app()), base_url="http://render-pdf")


@pytest.mark.parametrize(
    ("url", "answer"),
    [
        ("http://127.0.0.1:3000", "127.0.0.1 is a loopback address"),
        ("http://[::1]:3000", "::1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
        ("http://10.0.0.8:3000", "10.0.0.8 is a private address"),
        ("http://localhost:3000", "'localhost' does not resolve to a public address"),
    ],
)
async def test_a_gotenberg_url_on_a_private_or_loopback_address_is_refused_and_not_stored(
    make_settings, running, url, answer
):
    # The service need not run (no LibreOffice): its routes answer, and `running` drops the test's databases.
    service = build_render(make_settings(RenderPdfSettings, auth_required=False, outbound_allow=[]))
    async with client(service) as http:
        refused = await http.put("/backends/acme", headers=TENANT, json={"backend": "gotenberg", "gotenberg_url": url})
        assert refused.status_code == 422, refused.text
        (problem,) = refused.json()["detail"]
        assert problem["loc"] == ["body", "gotenberg_url"]
        assert problem["msg"].startswith(answer) and "refused unless PUBLIPOST_OUTBOUND_ALLOW lists" in problem["msg"]
        assert (await http.get("/backends/acme", headers=TENANT)).json()["backend"] == "libreoffice"
    await service.storage.close()


async def test_the_allow_list_lets_an_admin_name_an_internal_gotenberg(make_settings, running):
    service = build_render(make_settings(RenderPdfSettings, auth_required=False, outbound_allow=["127.0.0.0/8"]))
    async with client(service) as http:
        body = {"backend": "gotenberg", "gotenberg_url": "http://127.0.0.1:3000"}
        assert (await http.put("/backends/acme", headers=TENANT, json=body)).status_code == 200
        shown = (await http.get("/backends/acme", headers=TENANT)).json()
        assert (shown["backend"], shown["gotenberg_url"]) == ("gotenberg", "http://127.0.0.1:3000/")
    await service.storage.close()
