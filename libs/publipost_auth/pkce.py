"""Proof Key for Code Exchange (RFC 7636), S256 only: the web console makes the pair, the development issuer
checks it. A code stolen on its way back through the browser is useless without the verifier, which never
leaves the console."""

import base64
import hashlib
import hmac
import re
import secrets

# RFC 7636 §4.1: 43 to 128 characters of the unreserved set.
VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def new_verifier() -> str:
    return secrets.token_urlsafe(48)  # 64 characters, 384 random bits


def s256_challenge(verifier: str) -> str:
    """BASE64URL(SHA256(verifier)) without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verifier_matches(verifier: str | None, challenge: str) -> bool:
    """Whether `verifier` is well formed and hashes to `challenge` (compared in constant time)."""
    if verifier is None or not VERIFIER.match(verifier):
        return False
    return hmac.compare_digest(s256_challenge(verifier), challenge)
