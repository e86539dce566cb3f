"""What an e-mail's headers may carry, the same everywhere one is accepted (directory, campaigns, merge,
dispatch): address syntax, and text free of control characters."""

import re

# One @, something on each side, a dot in the domain, no spaces, angle brackets or separators:
# what a mail server needs to route; the server has the last word.
_ADDRESS = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;.]+$")
NOT_ASCII = (
    "only ASCII addresses are accepted: a mail server need not take others (SMTPUTF8); "
    "write an internationalised domain in its xn-- form"
)


def address_problem(address: str) -> str | None:
    """Why mail cannot be sent to `address` (None when it can).

    Addresses outside ASCII are refused rather than half supported: sending one needs the SMTPUTF8
    extension on every server on the way, which nothing guarantees, and a domain can always be given in
    its ASCII (xn--) form.
    """
    if len(address) > 254:
        return "longer than 254 characters"
    if not _ADDRESS.match(address):
        return "not an e-mail address"
    if not address.isascii():
        return NOT_ASCII
    return None


def is_valid_address(address: str) -> bool:
    return address_problem(address) is None


def invalid_address_message(address: str) -> str | None:
    """"'x@' is not a valid e-mail address", with the reason when it is not plain syntax; None when valid."""
    problem = address_problem(address)
    if problem is None:
        return None
    reason = "" if problem == "not an e-mail address" else f": {problem}"
    return f"{address!r} is not a valid e-mail address{reason}"


def invalid_addresses_message(invalid: list[str]) -> str:
    """One message for a list's invalid addresses, saying why when some are valid but for their characters."""
    message = f"not valid e-mail addresses: {', '.join(map(repr, invalid))}"
    return f"{message} ({NOT_ASCII})" if any(address_problem(a.strip()) == NOT_ASCII for a in invalid) else message


def normalise_address(address: str) -> str:
    """Addresses compare without surrounding spaces and with a lower-case domain."""
    local, _, domain = address.strip().rpartition("@")
    return f"{local}@{domain.lower()}"


def parse_address_list(text: str) -> tuple[list[str], list[str]]:
    """Comma- or semicolon-separated addresses: (the valid ones normalised, the invalid ones as written)."""
    parts = [p.strip() for p in re.split(r"[,;]", text) if p.strip()]
    return [normalise_address(p) for p in parts if is_valid_address(p)], [p for p in parts if not is_valid_address(p)]


# C0 controls (tab, CR and LF included), DEL, C1 controls and the Unicode line and paragraph separators:
# none has a place in a header, and str.splitlines(), which the standard library's header folding uses,
# breaks a line at VT, FF, FS, GS, RS, NEL, U+2028 and U+2029 as well as at CR and LF.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def control_character(text: str) -> str | None:
    """The first control character of `text`, as U+XXXX, or None: a header (subject, file name) refuses it."""
    found = _CONTROL.search(text)
    return f"U+{ord(found.group()):04X}" if found else None
