"""What must never reach a log: passwords, bearer tokens, API keys, client secrets, password-sealing keys.

`tests/conftest.py` scans what every test printed (the services' logs, in-process or not) as the run goes;
`tests/integration/test_no_secret_in_logs.py`, after every other test, reports what was found there and in
the log files of the local stacks the run started.
"""

import re
from collections.abc import Iterator

from tests.credentials import SERVICE_SECRET

PATTERNS = {
    "a bearer token (JWT)": re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    "an API key": re.compile(r"pp_[0-9a-f]{16}_[A-Za-z0-9_-]{43}"),
    "an SMTP login (AUTH PLAIN or LOGIN with its credentials)": re.compile(r"AUTH (?:PLAIN|LOGIN) [A-Za-z0-9+/=]{8,}"),
    "HTTP Basic credentials": re.compile(r"Basic [A-Za-z0-9+/]{12,}={0,2}"),
}
# The passwords the tests give sending accounts and people (long enough to be told from other words).
PASSWORDS = ("s3cret-pw", "third-pw", "elsewhere-pw", "new-pw", "S3cr3t-A")
KNOWN_SECRETS = {"the services' client secret": SERVICE_SECRET}


def secrets_in(text: str) -> Iterator[str]:
    """What kind of secret `text` holds, each with a redacted excerpt of where."""
    for kind, pattern in PATTERNS.items():
        for match in pattern.finditer(text):
            yield f"{kind}: …{_around(text, match.start(), match.end())}…"
    for password in PASSWORDS:
        for match in re.finditer(re.escape(password), text):
            yield f"the password {password!r}: …{_around(text, match.start(), match.end())}…"
    for kind, secret in KNOWN_SECRETS.items():
        if secret in text:
            index = text.index(secret)
            yield f"{kind}: …{_around(text, index, index + len(secret))}…"


def _around(text: str, start: int, end: int) -> str:
    """The line around a secret, the secret itself cut to its first characters."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    return (text[max(line_start, start - 80) : start] + text[start : start + 6] + "[…]" + text[end : min(line_end, end + 80)]).strip()
