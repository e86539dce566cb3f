"""The `publipost` command against the real services (template, merge, render-pdf, dispatch, the directory,
RabbitMQ, the database, LibreOffice, the SMTP capture), run as a person runs it: a separate process, its
configuration in a folder of its own, the services found through the environment."""

import asyncio
import io
import json
import os
import sys
import uuid
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from publipost_contracts import MailingRegrouped, MergeRequested
from publipost_localstack.dev_issuer import PUBLIC_CLIENT, DevIssuer
from publipost_merge.domain import mailing_id_for
from pypdf import PdfReader

from tests.credentials import ISSUER, ISSUER_URL, token
from tests.integration.test_dispatch_service import TENANT, flow, record  # noqa: F401 - flow is the fixture
from tests.support import wait_until

pytestmark = pytest.mark.slow


@dataclass
class Ran:
    code: int
    out: str
    err: str


@pytest.fixture
async def terminal(flow, serve_http, infra, namespace, tmp_path):  # noqa: F811 - the fixture imported above
    """`await terminal("watch", id)`: the command in a process of its own, pointed at this test's services."""
    # A person of tenant acme who logs in by password, given tokens signed as the services expect.
    people = DevIssuer(
        ISSUER_URL,
        ISSUER.key,
        {
            "clients": {PUBLIC_CLIENT: {"public": True}},
            "users": {"ann": {"password": "correct horse", "tenant_id": "acme", "roles": ["operator"]}},
        },
    )
    issuer_url = await serve_http(SimpleNamespace(http_app=people.app))
    env = {key: value for key, value in os.environ.items() if not key.startswith("PUBLIPOST_")}
    env |= {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "PUBLIPOST_TEMPLATE_URL": flow["template_url"],
        "PUBLIPOST_MERGE_URL": str(flow["merge_http"].base_url),
        "PUBLIPOST_DISPATCH_URL": await serve_http(flow["dispatch"]),
        "PUBLIPOST_ISSUER_URL": issuer_url,
        # Its discovery names the tokens' issuer, https://issuer.publipost.test, which is not served.
        "PUBLIPOST_TOKEN_URL": f"{issuer_url}/token",
        "RABBITMQ_URL": infra.rabbitmq_url,
        "PUBLIPOST_NAMESPACE": namespace,
        "COLUMNS": "200",
    }

    async def run(*args: str) -> Ran:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "publipost",
            *args,
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=240)
        assert process.returncode is not None
        return Ran(process.returncode, out.decode(), err.decode())

    return run


async def test_a_person_logs_in_follows_a_mailing_downloads_it_sends_it_and_re_sends_what_did_not_go(
    flow,  # noqa: F811 - the fixture imported above
    terminal,
    namespace,
    tmp_path,
):
    given = await terminal("login", "--token", token("acme", ["viewer"]))
    assert given.code == 0, given.err
    assert "logged in as test:acme:viewer (tenant acme, roles viewer)" in given.out
    logged_in = await terminal("login", "ann", "--password", "correct horse")
    assert logged_in.code == 0, logged_in.err
    assert (await terminal("whoami")).out.startswith("user:ann (tenant acme, roles operator)")

    # An internal system asks for the mailing on the bus; the person follows it from the terminal.
    request = MergeRequested(
        tenant_id="acme",
        correlation_id=str(uuid.uuid4()),
        request_id=str(uuid.uuid4()),
        template_id=flow["template_id"],
        name="Notices",
        records=[record(1, "one@example.test"), record(2, "two@reject.test"), record(3, None)],
        custom_fields={"signatory": "Jane Manager"},
        output="pdf",
    )
    await flow["system"].publish(request)
    mailing_id = mailing_id_for("acme", request.request_id)

    async def known() -> bool:
        return (await flow["merge_http"].get(f"/mailings/{mailing_id}", headers=TENANT)).status_code == 200

    await wait_until(known, timeout=60)
    watched = await terminal("watch", mailing_id)
    assert watched.code == 0, watched.err
    assert "converting to PDF" in watched.out
    assert f"Notices ({mailing_id}): ready, 3 documents, print file in 1 part, 3 pages" in watched.out

    listed = json.loads((await terminal("mailing", "list", "--json")).out)
    assert [m["id"] for m in listed["items"]] == [mailing_id]

    downloaded = await terminal("download", mailing_id, "--part", "1", "-o", "print.pdf")
    assert downloaded.code == 0, downloaded.err
    assert len(PdfReader(io.BytesIO((tmp_path / "print.pdf").read_bytes())).pages) == 3

    sent = await terminal("send", mailing_id, "--subject", "Invoice {document_number}")
    assert sent.code == 0, sent.err
    assert "sent 1 / not sent 2" in sent.out

    regrouped = await flow["tap"].next(MailingRegrouped, lambda e: e.source_mailing_id == mailing_id, timeout=60)
    again = await terminal("resend-unsent", mailing_id)
    assert again.code == 0, again.err
    assert f"Notices (not sent by e-mail) ({regrouped.not_sent_mailing_id}): 2 documents to send again" in again.out
    assert "sent 0 / not sent 2" in again.out

    history = json.loads((await terminal("history", "--json")).out)["items"]
    assert sorted((entry["status"], ", ".join(entry["to"])) for entry in history) == [
        ("failed", ""),
        ("failed", ""),
        ("failed", "two@reject.test"),
        ("failed", "two@reject.test"),
        ("sent", "one@example.test"),
    ]
    shown = await terminal("history", "--status", "sent")
    assert "INV-0001  one@example.test  Invoice INV-0001" in shown.out

    dead_letters = await terminal("dlq", "list")
    assert dead_letters.code == 0, dead_letters.err
    assert f"{namespace}.merge.merge.requested.dlq" in dead_letters.out


async def test_a_refusal_of_a_service_is_its_reason_and_a_failed_exit(terminal):
    await terminal("login", "--token", token("acme", ["viewer"]))

    refused = await terminal("send", "no-such-mailing")

    assert refused.code == 1
    assert refused.err.startswith("error: dispatch answered 403: ")
    assert "Traceback" not in refused.err


async def test_a_person_starts_a_mailing_from_a_file_of_records_and_sees_it_through(flow, terminal, tmp_path):  # noqa: F811
    await terminal("login", "--token", token("acme", ["operator"]))
    (tmp_path / "clients.json").write_text(json.dumps([record(1, "one@example.test"), record(2, None)]))
    start = ("mailing", "create", "--template", flow["template_id"], "--records", "clients.json")

    refused = await terminal(*start)
    created = await terminal(*start, "--name", "December notices", "--field", "signatory=Jane Manager")

    assert refused.code == 1
    assert (
        refused.err
        == "error: merge answered 422: custom_fields: no value for the template's custom fields: signatory\n"
    )
    assert created.code == 0, created.err
    mailing_id = created.out.split()[1]
    assert f"December notices ({mailing_id}): ready, 2 documents, print file in 1 part, 2 pages" in created.out
    listed = json.loads((await terminal("mailing", "list", "--json")).out)
    assert [(m["id"], m["name"]) for m in listed["items"]] == [(mailing_id, "December notices")]
