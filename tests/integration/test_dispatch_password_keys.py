"""Replacing the key that seals SMTP passwords, against the real pieces: several keys configured, the newest
seals, any opens; `python -m publipost_dispatch.passwords reseal` seals every stored password with the newest
and names those no key opens."""

import asyncio
import os
import sys
from datetime import UTC, datetime

from publipost_dispatch.sealing import PasswordSeal
from pymongo import AsyncMongoClient

from tests.integration.test_dispatch_account_guards import TENANT, LoginRecorder, account, dispatch_http  # noqa: F401


async def reseal(infra, namespace: str, keys: str) -> tuple[int, str, str]:
    """The command as a platform team runs it (a Kubernetes Job with dispatch's environment): exit status,
    what it prints, what it complains about."""
    env = {**os.environ, "MONGODB_URL": infra.mongodb_url, "PUBLIPOST_NAMESPACE": namespace, "PUBLIPOST_ACCOUNT_KEY": keys}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "publipost_dispatch.passwords", "reseal",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    output, complaints = await process.communicate()
    return process.returncode, output.decode(), complaints.decode()


async def test_a_new_key_seals_every_stored_password_once_resealed(
    dispatch_http,  # noqa: F811
    infra,
    namespace,
):
    old, new = PasswordSeal.new_key(), PasswordSeal.new_key()
    with LoginRecorder() as server:
        http = await dispatch_http(account_key=old)
        ids = [
            (await http.post("/accounts", headers=TENANT, json=account(server.port, password=password))).json()["id"]
            for password in ("first-pw", "second-pw")
        ]
        http = await dispatch_http(account_key=f"{new},{old}")  # the new key first: it seals from now on
        ids.append((await http.post("/accounts", headers=TENANT, json=account(server.port, password="third-pw"))).json()["id"])

        assert await reseal(infra, namespace, f"{new},{old}") == (
            0, "2 passwords sealed with the newest key, 1 already were, 0 saved meanwhile\n", ""
        )
        assert await reseal(infra, namespace, f"{new},{old}") == (  # once is enough
            0, "0 passwords sealed with the newest key, 3 already were, 0 saved meanwhile\n", ""
        )
        client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_url)
        tokens = [doc["password_sealed"] async for doc in client[f"{namespace}_dispatch"]["accounts"].find({})]
        await client.close()
        assert len(tokens) == 3 and all(PasswordSeal(new).is_current(token) for token in tokens)

        # With the old key gone, every account still logs in with its own password.
        http = await dispatch_http(account_key=new)
        for account_id in ids:
            assert (await http.post(f"/accounts/{account_id}/test", headers=TENANT)).json()["ok"] is True
        assert server.logins == [("billing", "first-pw"), ("billing", "second-pw"), ("billing", "third-pw")]


async def test_a_password_left_in_the_format_before_fernet_is_named_for_a_person_to_give_again(
    dispatch_http,  # noqa: F811
    infra,
    namespace,
):
    key = "q4cmq1XDL4m0vU3ZbDBw1JdbbXqg7bi5M2Vt9lP7aE8="  # tests/unit/test_dispatch_domain.py
    http = await dispatch_http(account_key=key)
    now = datetime.now(UTC)
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_url)
    await client[f"{namespace}_dispatch"]["accounts"].insert_one(  # the "s1." seal's code is gone
        {**account(2525), "_id": "account-1", "tenant_id": "acme", "verify_certificate": True,
         "password_sealed": "s1.Mu7CKEQdOaVpnVxPZZsNIDufdKHNlhXlzLYYm0w9j_UdplhsKcHKjxsDIjgE1-rJdrPV7o4xi3f_",
         "from_name": None, "reply_to": None, "limits": {"connections": 1}, "pause_after_errors": None,
         "version": 1, "created_at": now, "updated_at": now}
    )
    await client.close()

    assert await reseal(infra, namespace, key) == (
        1,
        "0 passwords sealed with the newest key, 0 already were, 0 saved meanwhile\n",
        (
            "cannot open acme/account-1: sealed with the format used before Fernet, which this release no longer "
            "opens: give this account's password again\n"
        ),
    )
    renamed = await http.put("/accounts/account-1", headers=TENANT, json=account(2525, name="Invoices"))
    assert renamed.status_code == 409 and "give it again" in renamed.json()["detail"]
    given = await http.put("/accounts/account-1", headers=TENANT, json=account(2525, password="new-pw"))
    assert given.status_code == 200 and given.json()["password_set"] is True
