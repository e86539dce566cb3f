"""SMTP passwords sealed at rest with keys from the environment (cryptography's Fernet, several keys at once).

The sealed text names the account the password belongs to, inside the authenticated token, so a
sealed password copied onto another account does not open. Keys are given newest first: the first seals,
every one opens (MultiFernet), so a key can be replaced without losing a password; `reseal` (the
`passwords` command) then seals every stored password with the newest key, after which the older keys
can go. Tokens carry a version prefix: "f1." for Fernet; "s1." for the standard-library seal used before
`cryptography` was a dependency, still opened so that `reseal` can migrate the last of them.
"""

import base64
import binascii
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

FERNET = "f1"
LEGACY = "s1"


class SealBroken(ValueError):
    """The token was altered, belongs to another account, or was sealed with a key not configured."""


def parse_keys(keys: str) -> list[str]:
    """`PUBLIPOST_ACCOUNT_KEY`: one key, or several separated by commas, newest first."""
    parsed = [key.strip() for key in keys.split(",") if key.strip()]
    if not parsed:
        raise ValueError("account_key: no key given")
    return parsed


def _secret(key: str, place: int) -> bytes:
    try:
        secret = base64.urlsafe_b64decode(key.encode())
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"account_key: key {place} is not urlsafe base64") from exc
    if len(secret) != 32:
        raise ValueError(f"account_key: key {place} is {len(secret)} bytes once decoded; give 32 random bytes")
    return secret


class PasswordSeal:
    def __init__(self, keys: str) -> None:
        parsed = parse_keys(keys)
        secrets = [_secret(key, place) for place, key in enumerate(parsed, start=1)]
        self._newest = Fernet(parsed[0].encode())
        self._fernet = MultiFernet([Fernet(key.encode()) for key in parsed])
        self._legacy = [_LegacySeal(secret) for secret in secrets]

    @staticmethod
    def new_key() -> str:
        return Fernet.generate_key().decode()

    def seal(self, password: str, context: str) -> str:
        return f"{FERNET}." + self._newest.encrypt(_bound(context, password)).decode()

    def open(self, token: str, context: str) -> str:
        version, _, body = token.partition(".")
        if version == LEGACY:
            return self._open_legacy(body, context)
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

    def _open_legacy(self, body: str, context: str) -> str:
        for legacy in self._legacy:
            try:
                return legacy.open(body, context)
            except SealBroken:
                continue
        raise SealBroken("sealed password does not match any configured key and this account")


def _owner(context: str) -> bytes:
    return hashlib.sha256(context.encode()).hexdigest().encode()


def _bound(context: str, password: str) -> bytes:
    return _owner(context) + b"\n" + password.encode()


class _LegacySeal:
    """Opens "s1." tokens: HMAC-SHA256 in counter mode as the stream cipher, then HMAC-SHA256 over the
    version, nonce, account and ciphertext (encrypt-then-MAC), under keys derived from the same secret."""

    NONCE = 16
    TAG = 32

    def __init__(self, secret: bytes) -> None:
        self._encryption = hmac.new(secret, b"publipost seal: encryption", hashlib.sha256).digest()
        self._authentication = hmac.new(secret, b"publipost seal: authentication", hashlib.sha256).digest()

    def open(self, body: str, context: str) -> str:
        try:
            raw = base64.urlsafe_b64decode(body.encode())
        except (binascii.Error, ValueError) as exc:
            raise SealBroken("sealed password is not base64") from exc
        if len(raw) < self.NONCE + self.TAG:
            raise SealBroken("sealed password has an unknown format")
        nonce, cipher, tag = raw[: self.NONCE], raw[self.NONCE : -self.TAG], raw[-self.TAG :]
        message = LEGACY.encode() + nonce + len(context).to_bytes(4, "big") + context.encode() + cipher
        if not hmac.compare_digest(tag, hmac.new(self._authentication, message, hashlib.sha256).digest()):
            raise SealBroken("sealed password does not match this key and account")
        blocks = (len(cipher) + 31) // 32
        stream = b"".join(
            hmac.new(self._encryption, nonce + i.to_bytes(4, "big"), hashlib.sha256).digest() for i in range(blocks)
        )
        return bytes(a ^ b for a, b in zip(cipher, stream, strict=False)).decode()
