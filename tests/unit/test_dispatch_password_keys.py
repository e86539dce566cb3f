"""Replacing the key that seals SMTP passwords: several keys, the newest seals, any opens."""

import pytest
from publipost_dispatch.sealing import PasswordSeal, SealBroken

OLD = PasswordSeal.new_key()
NEW = PasswordSeal.new_key()


def test_with_a_new_key_first_old_passwords_still_open_and_new_ones_are_sealed_with_it():
    sealed_before = PasswordSeal(OLD).seal("s3cret-é", "acme/account-1")

    both = PasswordSeal(f"{NEW}, {OLD}")
    assert both.open(sealed_before, "acme/account-1") == "s3cret-é"
    assert not both.is_current(sealed_before)
    sealed_now = both.seal("other-pw", "acme/account-2")
    assert both.is_current(sealed_now)
    assert PasswordSeal(NEW).open(sealed_now, "acme/account-2") == "other-pw"
    with pytest.raises(SealBroken, match="does not match any configured key"):
        PasswordSeal(OLD).open(sealed_now, "acme/account-2")


def test_a_resealed_password_opens_with_the_new_key_alone_and_only_for_its_account():
    sealed_before = PasswordSeal(OLD).seal("s3cret-é", "acme/account-1")
    resealed = PasswordSeal(f"{NEW},{OLD}").reseal(sealed_before, "acme/account-1")
    assert resealed.startswith("f1.") and PasswordSeal(NEW).open(resealed, "acme/account-1") == "s3cret-é"
    with pytest.raises(SealBroken, match="belongs to another account"):
        PasswordSeal(NEW).open(resealed, "acme/account-2")


@pytest.mark.parametrize(
    ("keys", "problem"),
    [("", "no key given"), (f"{NEW},not-a-key", "key 2 is not urlsafe base64"), (f"{NEW},c2hvcnQ=", "key 2 is 5 bytes")],
)
def test_a_bad_key_is_named_by_its_place(keys, problem):
    with pytest.raises(ValueError, match=problem):
        PasswordSeal(keys)
