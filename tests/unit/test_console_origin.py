"""The console refuses a form posted from another site: an unsafe request must carry the console's own Origin
(or Referer). Driven through the console's app, with the services behind it faked."""

import httpx
import pytest
from cryptography.fernet import Fernet
from publipost_console.app import build
from publipost_console.origin import comes_from_the_console, origin_of
from publipost_console.settings import ConsoleSettings

CONSOLE = "http://console.test"


@pytest.fixture
async def console():
    def nothing_answers(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    settings = ConsoleSettings(
        auth_issuer_url="https://issuer.test",
        session_key=Fernet.generate_key().decode(),
        public_url=CONSOLE,
    )
    app = build(settings, httpx.MockTransport(nothing_answers))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=CONSOLE) as client:
        yield client


async def test_a_form_posted_from_another_site_is_refused_with_a_page_saying_why(console):
    answer = await console.post(
        "/mailings/m-1/approve", headers={"Origin": "https://evil.test", "Accept-Language": "en"}
    )
    assert answer.status_code == 403
    assert "was not sent from a page of Publipost, so nothing was done" in answer.text


async def test_a_form_posted_from_another_site_is_refused_in_french_too(console):
    answer = await console.post("/logout", headers={"Referer": "https://evil.test/page", "Accept-Language": "fr"})
    assert answer.status_code == 403
    assert "rien n'a été fait" in answer.text.replace("&#39;", "'")


async def test_a_post_without_origin_or_referer_is_refused(console):
    assert (await console.post("/logout")).status_code == 403


async def test_a_form_posted_from_the_console_itself_goes_through(console):
    answer = await console.post("/logout", headers={"Origin": CONSOLE})
    assert answer.status_code != 403
    answer = await console.post("/logout", headers={"Referer": f"{CONSOLE}/mailings?page=2"})
    assert answer.status_code != 403


async def test_pages_are_read_from_anywhere(console):
    assert (await console.get("/healthz", headers={"Origin": "https://evil.test"})).status_code == 200


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"origin": "http://console.test"}, True),
        ({"origin": "HTTP://Console.test:80"}, True),  # the same origin, written otherwise
        ({"origin": "http://console.test:8080"}, False),
        ({"origin": "https://console.test"}, False),
        ({"origin": "http://console.test.evil.test"}, False),
        ({"origin": "null"}, False),  # a sandboxed frame or a file: page
        ({"origin": "https://evil.test", "referer": "http://console.test/"}, False),  # Origin decides
        ({"referer": "http://console.test/settings"}, True),
        ({"referer": "not a url"}, False),
        ({}, False),
    ],
)
def test_an_unsafe_request_must_come_from_the_consoles_origin(headers, allowed):
    assert comes_from_the_console("POST", headers, "http://console.test/") is allowed
    assert comes_from_the_console("GET", headers, "http://console.test/") is True


def test_an_origin_is_scheme_host_and_a_port_other_than_the_default():
    assert origin_of("https://Publipost.example.com:443/console/") == "https://publipost.example.com"
    assert origin_of("http://127.0.0.1:8108/x") == "http://127.0.0.1:8108"
    assert origin_of("ftp://example.com") is None
