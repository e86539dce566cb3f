"""SMTP passwords sealed at rest with keys from the environment (cryptography's Fernet, several keys at once).

The sealed text names the account the password belongs to, inside the authenticated token, so a
sealed password copied onto another account does not open. Keys are given newest first: the first seals,
every one opens (MultiFernet), so a key can be replaced without losing a password; `reseal` (the
`passwords` command) then seals every stored password with the newest key, after which the older keys
can go. Tokens carry a version prefix, "f1." for Fernet. The hand-made standard-library seal used before
`cryptography` was a dependency ("s1." tokens) is gone: the `reseal` of the commit that added several keys
(f70124f) migrates its tokens, and one left is refused, its account's password to be given again.
"""

import base64
import binascii
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

FERNET = "f1"
PRE_FERNET = "s1"  # recognised only to say what to do about it


class SealBroken(ValueError):
    """The token was altered, belongs to another account, or was sealed with a key not configured."""


def parse_keys(keys: str) -> list[str]:
    """`PUBLIPOST_ACCOUNT_KEY`: one key, or several separated by commas, newest first."""
    parsed = [key.strip() for key in keys.split(",") if key.strip()]
    if not parsed:
        raise ValueError("account_key: no key given")
    return parsed


def _fernet(key: str, place: int) -> Fernet:
    try:
        secret = base64.urlsafe_b64decode(key.encode())
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"account_key: key {place} is not urlsafe base64") from exc
    if len(secret) != 32:
        raise ValueError(f"account_key: key {place} is {len(secret)} bytes once decoded; give 32 random bytes")
    return Fernet(key.encode())


class PasswordSeal:
    def __init__(self, keys: str) -> None:
        fernets = [_fernet(key, place) for place, key in enumerate(parse_keys(keys), start=1)]
        self._newest = fernets[0]
        self._fernet = MultiFernet(fernets)

    @staticmethod
    def new_key() -> str:
        return Fernet.generate_key().decode()

    def seal(self, password: str, context: str) -> str:
        return f"{FERNET}." + self._newest.encrypt(_bound(context, password)).decode()

    def open(self, token: str, context: str) -> str:
        version, _, body = token.partition(".")
        if version == PRE_FERNET:
            raise SealBroken("sealed with the format used before Fernet, which this release no longer opens")
        if version != FERNET:
            raise SealBroken("sealed password has an unknown format")
        try:
            plain = self._fernet.decrypt(body.encode())
        except InvalidToken as exc:
            raise SealBroken("sealed password does not match any configured key") from exc
        owner, _, password = plain.partition(b"\n")
        if owner != _owner(context):
            raise SealBroken("sealed password belongs to another account")
        return password.decode()

    def is_current(self, token: str) -> bool:
        """Whether `token` is a Fernet token of the newest key (nothing for `reseal` to do)."""
        version, _, body = token.partition(".")
        if version != FERNET:
            return False
        try:
            self._newest.decrypt(body.encode())
        except InvalidToken:
            return False
        return True

    def reseal(self, token: str, context: str) -> str:
        """The same password, sealed with the newest key."""
        return self.seal(self.open(token, context), context)


def _owner(context: str) -> bytes:
    return hashlib.sha256(context.encode()).hexdigest().encode()


def _bound(context: str, password: str) -> bytes:
    return _owner(context) + b"\n" + password.encode()
