"""The session lives in the browser, sealed: an encrypted, authenticated cookie (Fernet) holding the person's
access token, so any replica of the console serves any request with nothing shared but the key."""

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

SESSION_COOKIE = "publipost_session"
LOGIN_COOKIE = "publipost_login"  # the sign-in under way: its state and PKCE verifier, until the callback
LOGIN_MAX_AGE_S = 600


@dataclass(frozen=True)
class Session:
    access_token: str
    expires_at: int  # the token's exp: past it, the person signs in again
    name: str
    email: str | None = None
    roles: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LoginState:
    state: str
    verifier: str
    redirect_uri: str
    next_path: str


class Seal:
    """Seals and opens the cookies' values. A value that was tampered with, sealed with another key or older
    than its maximum age opens as None."""

    def __init__(self, key: str, max_age_s: int, clock: Callable[[], float] = time.time) -> None:
        self._fernet = Fernet(key.encode())
        self.max_age_s = max_age_s
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    def seal(self, value: Any) -> str:
        return self._fernet.encrypt_at_time(json.dumps(asdict(value)).encode(), int(self._clock())).decode()

    def _open(self, sealed: str | None, max_age_s: int) -> dict[str, Any] | None:
        if not sealed:
            return None
        try:
            return json.loads(self._fernet.decrypt_at_time(sealed.encode(), max_age_s, int(self._clock())))
        except (InvalidToken, ValueError):
            return None

    def session(self, sealed: str | None) -> Session | None:
        """The session of the cookie, while both the cookie and the token in it are alive."""
        opened = self._open(sealed, self.max_age_s)
        if opened is None:
            return None
        session = Session(**opened)
        return session if session.expires_at > self._clock() else None

    def login_state(self, sealed: str | None) -> LoginState | None:
        opened = self._open(sealed, LOGIN_MAX_AGE_S)
        return None if opened is None else LoginState(**opened)
