"""Forms are posted to the console itself: an unsafe request (POST, PUT, DELETE…) must come from one of the
console's own pages, told by the browser's Origin header (or, when a browser leaves it out, its Referer).
SameSite=Lax already keeps the session cookie off cross-site posts; this refuses a post from another site
the browser calls "same-site" (a sibling subdomain) and any browser that ignores SameSite."""

from urllib.parse import urlsplit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def origin_of(url: str) -> str | None:
    """scheme://host[:port] of a URL, lower-cased, the default port left out (RFC 6454 §6.1); None if it has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def comes_from_the_console(method: str, headers: dict[str, str], console_url: str) -> bool:
    """Whether a request may change something: a safe method always; an unsafe one only when its Origin (else
    its Referer) is the console's own. Neither header, or `Origin: null`: refused."""
    if method.upper() in SAFE_METHODS:
        return True
    expected = origin_of(console_url)
    sent = headers.get("origin")
    if sent is None:
        referer = headers.get("referer")
        return referer is not None and origin_of(referer) == expected
    return sent != "null" and origin_of(sent) == expected
