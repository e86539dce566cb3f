"""Replacing the key that seals SMTP passwords, against the real pieces: several keys configured, the newest
seals, any opens; `python -m publipost_dispatch.passwords reseal` seals every stored password with the newest."""

import asyncio
import os
import sys
from datetime import UTC, datetime

from publipost_dispatch.sealing import PasswordSeal
from pymongo import AsyncMongoClient

from tests.integration.test_dispatch_account_guards import TENANT, LoginRecorder, account, dispatch_http  # noqa: F401


async def reseal(infra, namespace: str, keys: str) -> tuple[int, str]:
    """The command as a platform team runs it (a Kubernetes Job with dispatch's environment): exit status, output."""
    env = {**os.environ, "MONGODB_URL": infra.mongodb_url, "PUBLIPOST_NAMESPACE": namespace, "PUBLIPOST_ACCOUNT_KEY": keys}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "publipost_dispatch.passwords", "reseal",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode, output.decode()


async def test_a_new_key_seals_every_stored_password_once_resealed_and_the_old_format_is_migrated(
    dispatch_http,  # noqa: F811
    infra,
    namespace,
):
    old, new = PasswordSeal.new_key(), PasswordSeal.new_key()
    legacy_key = "q4cmq1XDL4m0vU3ZbDBw1JdbbXqg7bi5M2Vt9lP7aE8="  # tests/unit/test_dispatch_domain.py
    legacy_token = "s1.Mu7CKEQdOaVpnVxPZZsNIDufdKHNlhXlzLYYm0w9j_UdplhsKcHKjxsDIjgE1-rJdrPV7o4xi3f_"
    with LoginRecorder() as server:
        http = await dispatch_http(account_key=old)
        sealed_old = (await http.post("/accounts", headers=TENANT, json=account(server.port, password="old-pw"))).json()
        accounts = AsyncMongoClient(infra.mongodb_url)[f"{namespace}_dispatch"]["accounts"]
        now = datetime.now(UTC)
        await accounts.insert_one(  # sealed before Fernet, by the standard-library seal
            {**account(server.port), "_id": "account-1", "tenant_id": "acme", "verify_certificate": True,
             "password_sealed": legacy_token, "from_name": None, "reply_to": None, "limits": {"connections": 1},
             "pause_after_errors": None, "version": 1, "created_at": now, "updated_at": now}
        )

        assert await reseal(infra, namespace, f"{new},{old},{legacy_key}") == (
            0, "2 passwords sealed with the newest key, 0 already were, 0 saved meanwhile\n"
        )
        assert await reseal(infra, namespace, f"{new},{old},{legacy_key}") == (  # once is enough
            0, "0 passwords sealed with the newest key, 2 already were, 0 saved meanwhile\n"
        )
        tokens = {doc["_id"]: doc["password_sealed"] async for doc in accounts.find({})}
        assert all(token.startswith("f1.") and PasswordSeal(new).is_current(token) for token in tokens.values())
        await accounts.database.client.close()

        # With the old keys gone, every account still logs in with its own password.
        http = await dispatch_http(account_key=new)
        for account_id in (sealed_old["id"], "account-1"):
            assert (await http.post(f"/accounts/{account_id}/test", headers=TENANT)).json()["ok"] is True
        assert server.logins == [("billing", "old-pw"), ("billing", "s3cret-é")]
