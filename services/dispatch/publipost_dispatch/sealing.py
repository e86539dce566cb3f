"""SMTP passwords sealed at rest with a key from the environment.

`cryptography` (and its Fernet) is not among the project's locked dependencies, so the seal uses the
standard library only, with Fernet's shape: a random nonce, a stream cipher, then a MAC over the whole
token (encrypt-then-MAC). The keystream is HMAC-SHA256(encryption key, nonce || block counter) — HMAC as
a pseudo-random function in counter mode — and the tag is HMAC-SHA256 under a second key derived from
the same secret. The tag also covers the account the password belongs to, so a sealed password copied
onto another account does not open. Tokens carry a version prefix, so a later switch to Fernet can
read both while re-sealing.
"""

import base64
import binascii
import hashlib
import hmac
import secrets

VERSION = b"s1"
_NONCE = 16
_TAG = 32


class SealBroken(ValueError):
    """The token was altered, belongs to another account, or was sealed with another key."""


class PasswordSeal:
    def __init__(self, key: str) -> None:
        try:
            secret = base64.urlsafe_b64decode(key.encode())
        except (binascii.Error, ValueError) as exc:
            raise ValueError("account_key: not urlsafe base64") from exc
        if len(secret) != 32:
            raise ValueError(f"account_key: {len(secret)} bytes once decoded; give 32 random bytes")
        self._encryption = hmac.new(secret, b"publipost seal: encryption", hashlib.sha256).digest()
        self._authentication = hmac.new(secret, b"publipost seal: authentication", hashlib.sha256).digest()

    @staticmethod
    def new_key() -> str:
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()

    def seal(self, password: str, context: str) -> str:
        nonce = secrets.token_bytes(_NONCE)
        plain = password.encode()
        cipher = bytes(a ^ b for a, b in zip(plain, self._keystream(nonce, len(plain)), strict=True))
        tag = self._tag(nonce, cipher, context)
        return VERSION.decode() + "." + base64.urlsafe_b64encode(nonce + cipher + tag).decode()

    def open(self, token: str, context: str) -> str:
        version, _, body = token.partition(".")
        try:
            raw = base64.urlsafe_b64decode(body.encode())
        except (binascii.Error, ValueError) as exc:
            raise SealBroken("sealed password is not base64") from exc
        if version.encode() != VERSION or len(raw) < _NONCE + _TAG:
            raise SealBroken("sealed password has an unknown format")
        nonce, cipher, tag = raw[:_NONCE], raw[_NONCE:-_TAG], raw[-_TAG:]
        if not hmac.compare_digest(tag, self._tag(nonce, cipher, context)):
            raise SealBroken("sealed password does not match this key and account")
        return bytes(a ^ b for a, b in zip(cipher, self._keystream(nonce, len(cipher)), strict=True)).decode()

    def _keystream(self, nonce: bytes, length: int) -> bytes:
        blocks = (length + 31) // 32
        stream = b"".join(
            hmac.new(self._encryption, nonce + i.to_bytes(4, "big"), hashlib.sha256).digest() for i in range(blocks)
        )
        return stream[:length]

    def _tag(self, nonce: bytes, cipher: bytes, context: str) -> bytes:
        message = VERSION + nonce + len(context).to_bytes(4, "big") + context.encode() + cipher
        return hmac.new(self._authentication, message, hashlib.sha256).digest()
