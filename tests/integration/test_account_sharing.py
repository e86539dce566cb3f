"""Sending accounts and people (issue 14, point 2), against the running services with real tokens: an admin
shares a tenant's account with some people or roles, a person keeps a personal account only they send
through, everyone sees and sends through exactly the accounts shared with them, over HTTP, over the bus and
through a campaign; an admin lists the people of the tenant."""

import email

import pytest
from publipost_auth import Role

from tests.credentials import credentials
from tests.integration.test_dispatch_product import account
from tests.integration.test_dispatch_service import dispatch, flow, merge_mailing, record  # noqa: F401
from tests.support import wait_until

pytestmark = pytest.mark.slow

ADMIN = credentials("acme", Role.ADMIN)
ALICE = credentials("acme", Role.OPERATOR, subject="alice")
BOB = credentials("acme", Role.OPERATOR, subject="bob")
CRM = credentials("acme", Role.INTEGRATOR, subject="crm-client")


async def _final(http, dispatch_id: str, headers: dict[str, str]) -> dict:
    async def done():
        shown = (await http.get(f"/dispatches/{dispatch_id}", headers=headers)).json()
        return shown if shown.get("status") in ("completed", "refused") else None

    return await wait_until(done, timeout=60)


def _received_by(flow) -> list[str]:  # noqa: F811
    return sorted(email.message_from_bytes(raw)["To"] for raw in flow["mailbox"].messages())


async def test_each_person_sends_through_the_accounts_shared_with_them_and_their_own(flow):  # noqa: F811
    http = flow["dispatch_http"]
    port = flow["mailbox"].port
    for_alice = (await http.post("/accounts", headers=ADMIN, json=account(port, name="Alice's team", shared_with_users=["alice"], shared_with_roles=[]))).json()
    everyone = (await http.post("/accounts", headers=ADMIN, json=account(port, name="Everyone"))).json()
    assert (for_alice["shared_with_users"], for_alice["shared_with_roles"]) == (["alice"], [])
    assert everyone["shared_with_roles"] == ["integrator", "operator"]  # every role that sends, unless said

    # An operator makes no shared account, but one personal account of their own.
    refused = await http.post("/accounts", headers=BOB, json=account(port, name="Mine?"))
    assert refused.status_code == 403 and "set personal" in refused.text
    bobs = await http.post("/accounts", headers=BOB, json=account(port, name="Bob's mailbox", personal=True))
    assert bobs.status_code == 201, bobs.text
    bobs = bobs.json()
    assert (bobs["personal"], bobs["owner"]) == (True, "bob")
    again = await http.post("/accounts", headers=BOB, json=account(port, name="Bob's other", personal=True))
    assert again.status_code == 409

    # Each sees the accounts they may send through; the admin sees them all.
    def names(answer) -> list[str]:
        return sorted(a["name"] for a in answer.json())

    assert names(await http.get("/accounts", headers=ALICE)) == ["Alice's team", "Everyone"]
    assert names(await http.get("/accounts", headers=BOB)) == ["Bob's mailbox", "Everyone"]
    assert names(await http.get("/accounts", headers=ADMIN)) == ["Alice's team", "Bob's mailbox", "Everyone"]
    assert (await http.get(f"/accounts/{bobs['id']}", headers=ALICE)).status_code == 404
    # A personal account is its owner's to change and test, not even an admin's.
    assert (await http.put(f"/accounts/{bobs['id']}", headers=ADMIN, json=account(port, name="Taken"))).status_code == 403
    assert (await http.post(f"/accounts/{bobs['id']}/test", headers=ADMIN)).status_code == 403
    renamed = await http.put(f"/accounts/{bobs['id']}", headers=BOB, json=account(port, name="Bob's own"))
    assert renamed.status_code == 200 and renamed.json()["personal"] is True

    async def a_mailing() -> str:  # a mailing once sent is regrouped: each dispatch sends a mailing of its own
        return (await merge_mailing(flow, [record(1, "one@example.test")])).mailing_id

    mailing_id = await a_mailing()

    async def started(headers, account_id):
        body = {"mailing_id": mailing_id, "subject": "Invoice {document_number}", "account_id": account_id}
        return await http.post("/dispatches", headers=headers, json=body)

    # Not shared with them: answered as an unknown account, and nothing goes.
    for headers, account_id in ((BOB, for_alice["id"]), (ALICE, bobs["id"]), (CRM, for_alice["id"])):
        answer = await started(headers, account_id)
        assert answer.status_code == 404 and "shared with you" in answer.text, answer.text
    assert flow["mailbox"].messages() == []

    # Shared with them: sent, through HTTP; and by a campaign-less integrating system on the bus.
    for headers, account_id in ((ALICE, for_alice["id"]), (BOB, bobs["id"]), (CRM, everyone["id"])):
        answer = await started(headers, account_id)
        assert answer.status_code == 202, answer.text
        assert (await _final(http, answer.json()["dispatch_id"], headers))["status"] == "completed"
        mailing_id = await a_mailing()
    on_the_bus = await dispatch(flow, mailing_id, account_id=for_alice["id"])
    shown = await _final(http, on_the_bus.dispatch_id, ADMIN)
    assert shown["status"] == "refused" and "shared with you" in shown["reason"]
    assert _received_by(flow) == ["one@example.test"] * 3

    # The admin lists the people who used Publipost, to share an account with them.
    template_http = flow["template_http"]
    await template_http.get("/me", headers=ALICE)
    await template_http.get("/me", headers=BOB)

    async def people():
        listed = (await template_http.get("/users", headers=ADMIN)).json()
        subjects = sorted(u["subject"] for u in listed)
        return listed if {"alice", "bob"} <= set(subjects) else None

    listed = await wait_until(people, timeout=10)
    alice = next(u for u in listed if u["subject"] == "alice")
    assert alice["roles"] == ["operator"]
    globex = (await template_http.get("/users", headers=credentials("globex", Role.ADMIN))).json()
    assert not {"alice", "bob"} & {u["subject"] for u in globex}  # another tenant's people are not listed
