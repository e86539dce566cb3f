"""E-mail address syntax, the same everywhere an address is accepted (directory, campaigns, dispatch)."""

import re

# One @, something on each side, a dot in the domain, no spaces, angle brackets or separators:
# what a mail server needs to route; the server has the last word.
_ADDRESS = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;.]+$")


def is_valid_address(address: str) -> bool:
    return len(address) <= 254 and bool(_ADDRESS.match(address))


def normalise_address(address: str) -> str:
    """Addresses compare without surrounding spaces and with a lower-case domain."""
    local, _, domain = address.strip().rpartition("@")
    return f"{local}@{domain.lower()}"


def parse_address_list(text: str) -> tuple[list[str], list[str]]:
    """Comma- or semicolon-separated addresses: (the valid ones normalised, the invalid ones as written)."""
    parts = [p.strip() for p in re.split(r"[,;]", text) if p.strip()]
    return [normalise_address(p) for p in parts if is_valid_address(p)], [p for p in parts if not is_valid_address(p)]
