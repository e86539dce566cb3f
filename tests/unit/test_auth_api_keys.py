"""An API key is shown once and kept only as a hash; it works for its tenant and roles until revoked; its
last use is recorded in batches, not one write per call."""

import asyncio
import hashlib
from datetime import timedelta

import pytest
from publipost_auth import ApiKeyVerifier, InvalidCredentials, PrincipalKind, Role
from publipost_auth.api_keys import looks_like_api_key, new_key, secret_digest, split_key

from tests.fake_identity import T0, MemoryKeys


@pytest.fixture
def keys() -> MemoryKeys:
    return MemoryKeys()


def verifier(keys: MemoryKeys, cache_s: float = 10, flush_s: float = 60) -> ApiKeyVerifier:
    return ApiKeyVerifier(keys, cache_s=cache_s, flush_s=flush_s)  # type: ignore[arg-type]


def test_a_key_is_pp_id_secret_and_only_the_hash_of_its_secret_is_kept():
    key_id, key, digest = new_key()
    assert key.startswith(f"pp_{key_id}_") and looks_like_api_key(key)
    assert split_key(key) == (key_id, key.split("_", 2)[2])
    secret = split_key(key)[1]
    assert len(secret) == 43  # 256 random bits
    assert digest == hashlib.sha256(secret.encode()).hexdigest() == secret_digest(secret)
    assert secret not in digest and new_key()[1] != key


@pytest.mark.parametrize(
    "bad", ["pp_", "pp_123_abc", "pk_0123456789abcdef_" + "a" * 43, "pp_0123456789ABCDEF_" + "a" * 43]
)
def test_a_credential_not_of_the_key_form_is_refused(bad):
    with pytest.raises(InvalidCredentials, match="pp_<id>_<secret>"):
        split_key(bad)


async def test_a_key_acts_for_its_tenant_with_its_roles(keys):
    key = keys.add(tenant_id="acme", roles=frozenset({Role.INTEGRATOR, Role.VIEWER}))
    principal = await verifier(keys).verify(key)
    assert principal.tenant_id == "acme"
    assert principal.roles == {Role.INTEGRATOR, Role.VIEWER}
    assert principal.kind is PrincipalKind.API_KEY
    assert principal.subject == split_key(key)[0]


async def test_a_wrong_secret_or_an_unknown_id_is_refused_alike(keys):
    key = keys.add()
    key_id, secret = split_key(key)
    wrong_secret = f"pp_{key_id}_{'A' * 43}"
    unknown_id = f"pp_{'0' * 16}_{secret}"
    for credential in (wrong_secret, unknown_id):
        with pytest.raises(InvalidCredentials, match="not known"):
            await verifier(keys).verify(credential)


async def test_a_revoked_key_stops_working_at_once_where_it_was_revoked_and_elsewhere_within_the_cache_time(keys):
    key = keys.add()
    key_id = split_key(key)[0]
    here, elsewhere = verifier(keys, cache_s=0.05), verifier(keys, cache_s=0.05)
    await here.verify(key)
    await elsewhere.verify(key)
    keys.revoke(key_id)
    here.forget(key_id)
    with pytest.raises(InvalidCredentials, match="revoked"):
        await here.verify(key)
    await elsewhere.verify(key)  # its cached answer, for at most cache_s
    await asyncio.sleep(0.06)
    with pytest.raises(InvalidCredentials, match="revoked"):
        await elsewhere.verify(key)


async def test_a_key_used_a_thousand_times_is_read_once_per_cache_period(keys):
    key = keys.add()
    checks = verifier(keys, cache_s=60)
    for _ in range(1000):
        await checks.verify(key)
    assert keys.reads == 1


async def test_last_use_is_written_in_one_batch_per_interval_with_the_latest_time_of_each_key(keys):
    first, second = keys.add(), keys.add()
    checks = verifier(keys, flush_s=0.05)
    for minute in range(3):
        keys.now = T0 + timedelta(minutes=minute)
        await checks.verify(first)
        await checks.verify(second)
    assert keys.batches == []  # nothing written per call

    await asyncio.sleep(0.06)
    keys.now = T0 + timedelta(minutes=5)
    await checks.verify(first)  # past the interval: this use starts the batch
    await asyncio.sleep(0)
    assert keys.batches == [
        {split_key(first)[0]: T0 + timedelta(minutes=5), split_key(second)[0]: T0 + timedelta(minutes=2)}
    ]


async def test_pending_last_uses_are_written_at_close_and_kept_through_a_database_blip(keys):
    key = keys.add()
    checks = verifier(keys, flush_s=3600)
    await checks.verify(key)
    keys.failing = True
    await checks.last_use.flush()
    assert keys.batches == []
    keys.failing = False
    await checks.close()
    assert keys.batches == [{split_key(key)[0]: T0}]
