"""Every route of every service, as its OpenAPI document lists it, against the running services with real
tokens (issue 14): without credentials → 401; with a role the route does not take → 403; naming what belongs
to another tenant (its ids in the path or the body) → 404, and that tenant's things are untouched.

Public: /healthz, /readyz and /metrics (probes and Prometheus carry no credentials), and /docs and
/openapi.json (the shape of the API, no tenant's data; the page must load before its Authorize button can
take a token). Every other route takes its caller from publipost_auth.require; the roles each accepts are
checked against the roles table of docs/identity.md, written out below.
"""

import io
import typing
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.params import Depends
from fastapi.routing import iter_route_contexts
from publipost_auth import OUTCOME_ROLES, PEOPLE_ROLES, READ_ROLES, START_ROLES, Role
from publipost_bus import Bus
from publipost_contracts import DispatchCompleted, MailingRegrouped, MergeCompleted, MergeRequested
from publipost_dispatch.app import build as build_dispatch
from publipost_dispatch.sealing import PasswordSeal
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

from tests.credentials import credentials
from tests.support import EventTap, sample_record

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).parents[2] / "samples" / "letter.docx"
PUBLIC = {"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}
ANYONE = {"/templates/predefined-fields", "/email-templates/variables", "/recipients/import/sample.csv",
          "/recipients/import/sample.xlsx", "/me"}  # reference data of no tenant, and who the caller is
START = {("POST", "/dispatches"), ("POST", "/dispatches/preview"), ("POST", "/dispatches/{dispatch_id}/resume"),
         ("POST", "/sends")}
OUTCOMES = ("/mailings", "/dispatches", "/sends", "/history")
ADMIN_AREAS = ("/accounts", "/api-keys", "/users", "/settings", "/quotas", "/backends", "/workers")
ADMIN, OPERATOR = frozenset({Role.ADMIN}), frozenset({Role.OPERATOR})
# Upserts by a key of the caller's own tenant: naming another tenant's key makes the caller's own thing.
OWN_KEYS = {("PUT", "/recipients/{customer_number}")}
# Lists keyed by an id: another tenant's id lists nothing (200, empty), which tells as little as a 404.
EMPTY_LISTS = {("GET", "/history/documents/{document_id}")}


def expected_roles(method: str, path: str) -> frozenset[Role]:
    """docs/identity.md, "Roles", route by route. Empty: any authenticated caller."""
    if path in ANYONE:
        return frozenset()
    if path.startswith(ADMIN_AREAS):
        if path.startswith("/accounts"):
            # Operators see the accounts shared with them and keep a personal one; admins the tenant's.
            return frozenset({Role.ADMIN, Role.OPERATOR})
        if method == "GET" and path.startswith(("/settings", "/quotas", "/backends")):
            return frozenset(READ_ROLES)
        return ADMIN
    if (method, path) in START:
        return frozenset(START_ROLES)
    if method == "GET":
        return frozenset(OUTCOME_ROLES if path.startswith(OUTCOMES) else READ_ROLES)
    return OPERATOR


def declared_roles(endpoint: Any) -> frozenset[Role] | None:
    """The roles of the endpoint's `require(...)` dependency; None when it has none."""
    for hint in typing.get_type_hints(endpoint, include_extras=True).values():
        for meta in getattr(hint, "__metadata__", ()):
            if isinstance(meta, Depends) and hasattr(meta.dependency, "accepts"):
                return meta.dependency.accepts
    return None


@dataclass
class Route:
    service: str
    method: str
    path: str
    roles: frozenset[Role]
    body: dict[str, Any] = field(default_factory=dict)  # httpx keyword arguments of a valid call

    def __str__(self) -> str:
        return f"{self.service}: {self.method} {self.path}"


@dataclass
class Victim:
    """What tenant `victim` owns, made through the services as its people would."""

    ids: dict[str, str] = field(default_factory=dict)

    def path(self, path: str) -> str:
        values = {
            "template_id": self.ids["email_template" if path.startswith("/email-templates") else "template"],
            "customer_number": "C1",
            "segment_id": self.ids["segment"],
            "mailing_id": self.ids["mailing"],
            "document_id": self.ids["sent_document" if path.startswith("/history") else "document"],
            "number": "1",
            "dispatch_id": self.ids["dispatch"],
            "send_id": self.ids["send"],
            "account_id": self.ids["account"],
            "campaign_id": self.ids["campaign"],
            "key_id": self.ids["api_key"],
            "subject": self.ids["user"],
            "tenant_id": "victim",
        }
        return path.format(**values)


def docx_file() -> dict[str, Any]:
    return {"files": {"file": ("letter.docx", SAMPLE.read_bytes())}}


def account(port: int) -> dict[str, Any]:
    return {"name": "Billing", "host": "127.0.0.1", "port": port, "tls": "none", "from_address": "billing@victim.test"}


def campaign(mailing_id: str) -> dict[str, Any]:
    return {"name": "x", "recurrence": {"kind": "once", "at": "2030-01-01T10:00:00+01:00"}, "mailing_id": mailing_id}


def bodies(victim: Victim, smtp_port: int) -> dict[tuple[str, str], dict[str, Any]]:
    """A valid body for each route that takes one; those naming ids name the victim's."""
    ids = victim.ids
    return {
        ("POST", "/templates"): {"data": {"name": "Mine", "custom_fields": "signatory"}, **docx_file()},
        ("POST", "/templates/{template_id}/versions"): docx_file(),
        ("POST", "/email-templates"): {"json": {"name": "Mine", "body_text": "Hello"}},
        ("PUT", "/email-templates/{template_id}"): {"json": {"name": "Mine", "body_text": "Hello"}},
        ("POST", "/api-keys"): {"json": {"name": "CRM", "roles": ["integrator"]}},
        ("PUT", "/recipients/{customer_number}"): {"json": {"email": "mine@acme.test"}},
        ("POST", "/recipients/import"): {"files": {"file": ("r.csv", b"customer_number,email\nC9,c9@acme.test\n")}},
        ("POST", "/segments"): {"json": {"name": f"Mine {uuid.uuid4()}", "filter": {}}},
        ("PUT", "/segments/{segment_id}"): {"json": {"name": "Mine", "filter": {}}},
        ("PUT", "/settings/resolution"): {"json": {"order": ["record", "directory"]}},
        ("PUT", "/settings/sending"): {"json": {"email_enabled": True}},
        ("PATCH", "/mailings/{mailing_id}"): {"json": {"name": "Mine"}},
        ("POST", "/mailings"): {
            "json": {"template_id": ids["template"], "records": [sample_record(1)], "custom_fields": {"signatory": "Me"}}
        },
        ("PUT", "/settings"): {"json": {"combined_page_limit": 100}},
        ("PUT", "/quotas/{tenant_id}"): {"json": {"yearly_limit": 0}},
        ("PUT", "/backends/{tenant_id}"): {"json": {"backend": None}},
        ("PUT", "/backends/{tenant_id}/overflow"): {"json": {"backend": None}},
        ("POST", "/dispatches"): {"json": {"mailing_id": ids["mailing"]}},
        ("POST", "/dispatches/preview"): {"json": {"mailing_id": ids["mailing"]}},
        ("POST", "/sends"): {
            "json": {"mailing_id": ids["mailing"], "document_id": ids["document"], "to": ["me@acme.test"]}
        },
        ("POST", "/accounts"): {"json": account(smtp_port)},
        ("PUT", "/accounts/{account_id}"): {"json": account(smtp_port)},
        ("POST", "/campaigns"): {"json": campaign(ids["mailing"])},
        ("PUT", "/campaigns/{campaign_id}"): {"json": campaign(ids["mailing"])},
    }


# Routes whose body names the victim's things although their path does not: refused as unknown (404).
BODY_NAMES_VICTIMS = {("POST", "/dispatches"), ("POST", "/dispatches/preview"), ("POST", "/sends"), ("POST", "/campaigns"),
                      ("POST", "/mailings")}


async def make_victims_things(services: dict[str, Any], urls: dict[str, str], system: Bus, tap: EventTap) -> Victim:
    victim = Victim()
    ids = victim.ids
    owner, admin = credentials("victim", Role.OPERATOR), credentials("victim", Role.ADMIN)

    def http(name: str, headers: dict[str, str]) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(services[name].http_app()), base_url="http://s",
                                 headers=headers)

    async with http("template", owner) as template:
        uploaded = await template.post("/templates", data={"name": "Theirs", "custom_fields": "signatory"}, **docx_file())
        assert uploaded.status_code == 201, uploaded.text
        ids["template"] = uploaded.json()["id"]
        ids["email_template"] = (await template.post("/email-templates", json={"name": "T", "body_text": "Hi"})).json()["id"]
    async with http("template", admin) as template:
        ids["api_key"] = (await template.post("/api-keys", json={"name": "CRM", "roles": ["viewer"]})).json()["key_id"]
        ids["user"] = (await template.get("/me", headers=owner)).json()["subject"]
    async with http("recipient-directory", owner) as directory:
        await directory.put("/recipients/C1", json={"email": "c1@victim.test", "name": "Their customer"})
        segment = await directory.post("/segments", json={"name": "Theirs", "customer_numbers": ["C1"]})
        ids["segment"] = segment.json()["id"]

    async def mailing() -> MergeCompleted:
        event = MergeRequested(
            tenant_id="victim",
            correlation_id=str(uuid.uuid4()),
            request_id=str(uuid.uuid4()),
            template_id=ids["template"],
            name="Their notices",
            records=[sample_record(1, email="c1@victim.test")],
            custom_fields={"signatory": "Their boss"},
            output="pdf",
        )
        await system.publish(event)
        return await tap.next(MergeCompleted, lambda e: e.request_id == event.request_id, timeout=120)

    sent, kept = await mailing(), await mailing()
    ids["mailing"] = kept.mailing_id  # left as it is: its documents and print file are what the walk names
    async with http("merge", owner) as merge:
        ids["document"] = (await merge.get(f"/mailings/{kept.mailing_id}/documents")).json()["items"][0]["id"]
        documents = (await merge.get(f"/mailings/{sent.mailing_id}/documents")).json()["items"]
        ids["sent_document"] = documents[0]["id"]
    async with http("dispatch", admin) as dispatch:
        ids["account"] = (await dispatch.post("/accounts", json=account(services["smtp_port"]))).json()["id"]
    async with http("dispatch", owner) as dispatch:
        started = await dispatch.post("/dispatches", json={"mailing_id": sent.mailing_id})
        assert started.status_code == 202, started.text
        ids["dispatch"] = started.json()["dispatch_id"]
        await tap.next(MailingRegrouped, lambda e: e.dispatch_id == ids["dispatch"], timeout=60)
        sent_now = await dispatch.post(
            "/sends", json={"mailing_id": kept.mailing_id, "document_id": ids["document"], "to": ["c1@victim.test"]}
        )
        assert sent_now.status_code == 202, sent_now.text
        ids["send"] = sent_now.json()["send_id"]
    async with http("scheduler", owner) as scheduler:
        created = await scheduler.post("/campaigns", json=campaign(kept.mailing_id))
        assert created.status_code == 201, created.text
        ids["campaign"] = created.json()["id"]
    async with http("render-pdf", admin) as render:
        assert (await render.put("/quotas/victim", json={"yearly_limit": 1000})).status_code == 200
    return victim


def routes_of(name: str, service: Any, examples: dict[tuple[str, str], dict[str, Any]], problems: list[str]) -> list[Route]:
    """The service's routes as its OpenAPI document lists them; a route of the app missing from it must be
    public, and each route must say whom it takes."""
    app = service.http_app()
    operations = {(method.upper(), path): op for path, ops in app.openapi()["paths"].items() for method, op in ops.items()}
    for context in iter_route_contexts(app.routes):
        for method in context.methods or ():
            if method != "HEAD" and (method, context.path) not in operations and context.path not in PUBLIC:
                problems.append(f"{name}: {method} {context.path} is left out of the OpenAPI document")
    endpoints = {
        (method, context.path): context.endpoint
        for context in iter_route_contexts(app.routes)
        for method in context.methods or ()
    }
    routes = []
    for (method, path), operation in sorted(operations.items()):
        if path in PUBLIC:
            continue
        roles = declared_roles(endpoints[(method, path)])
        if roles is None:
            problems.append(f"{name}: {method} {path} takes no caller (publipost_auth.require)")
            continue
        if roles != expected_roles(method, path):
            problems.append(
                f"{name}: {method} {path} takes {sorted(roles)}, the roles table says "
                f"{sorted(expected_roles(method, path))}"
            )
        if operation.get("requestBody", {}).get("required") and (method, path) not in examples:
            problems.append(f"{name}: {method} {path} takes a body: give this test an example of one")
        routes.append(Route(name, method, path, roles, examples.get((method, path), {})))
    return routes


async def test_every_route_refuses_no_credentials_a_role_without_the_right_and_another_tenants_ids(
    make_settings, running, serve_http, infra, namespace, mailbox
):
    account_key = PasswordSeal.new_key()
    services: dict[str, Any] = {}
    urls: dict[str, str] = {}
    services["template"] = await running(build_template(make_settings(TemplateSettings)))
    urls["template_url"] = await serve_http(services["template"])
    services["recipient-directory"] = await running(build_directory(make_settings(RecipientDirectorySettings)))
    urls["directory_url"] = await serve_http(services["recipient-directory"])
    services["merge"] = await running(
        build_merge(make_settings(MergeSettings, template_url=urls["template_url"], directory_url=urls["directory_url"]))
    )
    urls["merge_url"] = await serve_http(services["merge"])
    services["render-pdf"] = await running(build_render(make_settings(RenderPdfSettings)))
    dispatch_settings = make_settings(
        DispatchSettings,
        merge_url=urls["merge_url"],
        template_url=urls["template_url"],
        smtp_host=mailbox.host,
        smtp_port=mailbox.port,
        account_key=account_key,
    )
    services["dispatch"] = await running(build_dispatch(dispatch_settings))
    services["scheduler"] = await running(
        build_scheduler(make_settings(SchedulerSettings, tick_interval_s=3600, **urls))
    )
    system = Bus(make_settings(ServiceSettings, service_name="crm"), publishes=[MergeRequested])
    await system.start()
    try:
        async with EventTap(infra.rabbitmq_url, namespace, MergeCompleted, DispatchCompleted, MailingRegrouped) as tap:
            victim = await make_victims_things({**services, "smtp_port": mailbox.port}, urls, system, tap)
    finally:
        await system.stop()

    problems: list[str] = []
    examples = bodies(victim, mailbox.port)
    walked = 0
    for name, service in services.items():
        transport = httpx.ASGITransport(service.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://s") as http:
            # Reads first, so that what the walk's writes would do (were any let through) shows in the end.
            for route in sorted(routes_of(name, service, examples, problems), key=lambda r: r.method != "GET"):
                walked += 1
                await check(http, route, victim, problems)
    assert walked >= 70, walked  # every service's routes were found
    await check_victims_things_are_untouched(services, victim, problems)
    assert not problems, "\n".join(problems)


async def call(http: httpx.AsyncClient, route: Route, path: str, headers: dict[str, str]) -> httpx.Response:
    body = {key: (dict(value) if isinstance(value, dict) else value) for key, value in route.body.items()}
    if "files" in body:  # a file is read once per call
        body["files"] = {k: (n, io.BytesIO(c) if isinstance(c, bytes) else c) for k, (n, c) in body["files"].items()}
    return await http.request(route.method, path, headers=headers, **body)


async def check(http: httpx.AsyncClient, route: Route, victim: Victim, problems: list[str]) -> None:
    own_path = victim.path(route.path).replace("/quotas/victim", "/quotas/acme").replace("/backends/victim", "/backends/acme")
    anonymous = await call(http, route, own_path, {})
    if anonymous.status_code != 401 or "Bearer" not in anonymous.headers.get("www-authenticate", ""):
        problems.append(f"{route}: no credentials answered {anonymous.status_code}, not 401 with a challenge")
    spoofed = await call(http, route, own_path, {"X-Tenant-Id": "victim"})
    if spoofed.status_code != 401:
        problems.append(f"{route}: X-Tenant-Id alone answered {spoofed.status_code}, not 401")
    for role in sorted(PEOPLE_ROLES - route.roles if route.roles else ()):
        denied = await call(http, route, own_path, credentials("acme", role))
        if denied.status_code != 403:
            problems.append(f"{route}: acme's {role} answered {denied.status_code}, not 403")
    names_victims = "{" in route.path or (route.method, route.path) in BODY_NAMES_VICTIMS
    if not names_victims or (route.method, route.path) in OWN_KEYS or route.path in ANYONE:
        if route.method == "GET":
            listed = await call(http, route, route.path, credentials("acme"))
            leaked = [value for value in victim.ids.values() if value in listed.text]
            if listed.status_code != 200 or leaked:
                problems.append(f"{route}: acme's list answered {listed.status_code}, showing {leaked}")
        return
    intruder = await call(http, route, victim.path(route.path), credentials("acme"))
    if (route.method, route.path) in EMPTY_LISTS:
        if intruder.status_code != 200 or intruder.json() != []:
            problems.append(f"{route}: acme got {intruder.status_code} {intruder.text[:200]}, not an empty list")
    elif intruder.status_code != 404:
        problems.append(f"{route}: acme naming victim's ids answered {intruder.status_code}: {intruder.text[:200]}")
    if route.method == "GET" and "{" in route.path:
        owner = await call(http, route, victim.path(route.path), credentials("victim"))
        if owner.status_code != 200:
            problems.append(f"{route}: the owner answered {owner.status_code} (the walk names nothing real?)")


async def check_victims_things_are_untouched(services: dict[str, Any], victim: Victim, problems: list[str]) -> None:
    """Every read of the victim's things still answers as before the walk's writes: nothing deleted, renamed,
    re-quoted or re-pointed."""
    reads = {
        "template": [f"/templates/{victim.ids['template']}", f"/email-templates/{victim.ids['email_template']}",
                     "/api-keys"],
        "recipient-directory": ["/recipients/C1", f"/segments/{victim.ids['segment']}"],
        "merge": [f"/mailings/{victim.ids['mailing']}"],
        "render-pdf": ["/quotas/victim", "/backends/victim"],
        "dispatch": [f"/accounts/{victim.ids['account']}", f"/dispatches/{victim.ids['dispatch']}"],
        "scheduler": [f"/campaigns/{victim.ids['campaign']}"],
    }
    admin = credentials("victim")
    for name, paths in reads.items():
        transport = httpx.ASGITransport(services[name].http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://s", headers=admin) as http:
            for path in paths:
                answer = await http.get(path)
                if answer.status_code != 200:
                    problems.append(f"{name}: victim's {path} answers {answer.status_code} after the walk")
                    continue
                body = answer.json()
                if path == "/recipients/C1" and body.get("email") != "c1@victim.test":
                    problems.append(f"{name}: victim's recipient C1 changed: {body}")
                if path == "/quotas/victim" and body["yearly_limit"] != 1000:
                    problems.append(f"{name}: victim's quota changed: {body}")
                if path.startswith("/mailings") and body["name"] != "Their notices":
                    problems.append(f"{name}: victim's mailing renamed: {body['name']}")
                if path == "/api-keys" and any(key["revoked_at"] for key in body):
                    problems.append(f"{name}: victim's API key revoked")
