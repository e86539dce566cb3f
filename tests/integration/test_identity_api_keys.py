"""API keys in the real database: an admin makes a key for the CRM through /api-keys and sees it once; the
CRM calls with it; the admin lists the keys (never their secrets) and revokes it; its last use is recorded."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from publipost_auth import ApiKeyRepository, Authenticator, Principal, Role, api_keys_router, require
from publipost_auth.api_keys import secret_digest, split_key
from publipost_settings import ServiceSettings
from pymongo import AsyncMongoClient


@pytest.fixture
async def mongo(infra, namespace) -> AsyncIterator[AsyncMongoClient]:
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    yield client
    await client.drop_database(f"{namespace}_identity")
    await client.close()


@pytest.fixture
async def keys(mongo, namespace) -> ApiKeyRepository:
    repository = ApiKeyRepository(mongo[f"{namespace}_identity"])
    await repository.ensure_indexes()
    return repository


async def test_a_key_is_stored_as_the_hash_of_its_secret_with_its_tenant_and_roles(keys):
    new = await keys.create("acme", "CRM", [Role.INTEGRATOR], created_by="user-1")
    key_id, secret = split_key(new.key)
    stored = await keys.collection.find_one({"_id": key_id})
    assert stored["secret_sha256"] == secret_digest(secret)
    assert secret not in str(stored) and new.key not in str(stored)
    assert (stored["tenant_id"], stored["roles"], stored["revoked_at"]) == ("acme", ["integrator"], None)


async def test_keys_are_listed_newest_first_within_their_tenant_only(keys):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n, tenant in enumerate(["acme", "globex", "acme", "acme"]):
        keys.clock = lambda n=n: start + timedelta(days=n)
        await keys.create(tenant, f"key {n}", [Role.VIEWER], created_by="user-1")
    assert [key.name for key in await keys.list("acme")] == ["key 3", "key 2", "key 0"]
    assert [key.name for key in await keys.list("acme", skip=1, limit=1)] == ["key 2"]


async def test_a_key_is_revoked_only_by_its_own_tenant_and_revoking_again_keeps_the_first_date(keys):
    new = await keys.create("acme", "CRM", [Role.INTEGRATOR], created_by="user-1")
    assert await keys.revoke("globex", new.api_key.key_id) is None
    first = await keys.revoke("acme", new.api_key.key_id)
    again = await keys.revoke("acme", new.api_key.key_id)
    assert first.revoked_at is not None and again.revoked_at == first.revoked_at


async def test_last_use_only_ever_moves_forward(keys):
    new = await keys.create("acme", "CRM", [Role.INTEGRATOR], created_by="user-1")
    later = datetime(2026, 5, 1, 12, tzinfo=UTC)
    await keys.record_last_use({new.api_key.key_id: later})
    await keys.record_last_use({new.api_key.key_id: later - timedelta(hours=1)})  # a late batch of another replica
    stored = await keys.collection.find_one({"_id": new.api_key.key_id})
    assert stored["last_used_at"] == later


async def test_an_admin_makes_lists_and_revokes_a_key_through_the_api_and_its_last_use_is_recorded(
    keys, mongo, namespace
):
    settings = ServiceSettings(service_name="test", namespace=namespace, auth_required=True, auth_last_use_flush_s=3600)
    app = FastAPI()
    app.include_router(api_keys_router)

    @app.post("/merges")
    async def start_merge(caller: Annotated[Principal, Depends(require(Role.INTEGRATOR, Role.OPERATOR))]) -> dict:
        return {"tenant": caller.tenant_id}

    authenticator = Authenticator.for_service(settings, mongo)
    app.state.authenticator = authenticator
    admin_key = (await keys.create("acme", "first admin", [Role.ADMIN], created_by="command line")).key

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        admin = {"X-API-Key": admin_key}
        created = await http.post("/api-keys", headers=admin, json={"name": "CRM", "roles": ["integrator"]})
        assert created.status_code == 201
        crm_key, key_id = created.json()["key"], created.json()["key_id"]

        assert (await http.post("/merges", headers={"Authorization": f"Bearer {crm_key}"})).json() == {"tenant": "acme"}
        assert (await http.get("/api-keys", headers={"X-API-Key": crm_key})).status_code == 403  # not an admin
        service_role = await http.post("/api-keys", headers=admin, json={"name": "x", "roles": ["service"]})
        assert service_role.status_code == 422

        listed = (await http.get("/api-keys", headers=admin)).json()
        assert [key["name"] for key in listed] == ["CRM", "first admin"]
        assert all("key" not in key and "secret_sha256" not in key for key in listed)

        revoked = await http.delete(f"/api-keys/{key_id}", headers=admin)
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        assert (await http.post("/merges", headers={"X-API-Key": crm_key})).status_code == 401
        assert (await http.delete("/api-keys/0000000000000000", headers=admin)).status_code == 404

    await authenticator.close()  # the service stopping: pending last uses are written
    stored = await keys.collection.find_one({"_id": key_id})
    assert stored["last_used_at"] is not None
