"""Refusals: why a request cannot be done, in the words the person who asked reads, and which kind of no it is.

A service's domain raises them; publipost_runtime answers each kind over HTTP with its status, in one place
(NotFound 404, Gone 410, Conflict 409, Invalid 422, the reason as `detail`), and a handler of a bus message records
the same words as the message's refusal. No string is parsed to tell one kind from another.
"""


class Refusal(Exception):
    """The request cannot be done as it is; `str()` says why, naming the field when one is to blame."""


class NotFound(Refusal):
    """It names something the tenant does not have, or may not use: a mailing, a document, an account."""


class Gone(Refusal):
    """What it names was asked for and will never exist: a request accepted, then refused by its consumer."""


class Conflict(Refusal):
    """What it names exists but is not in a state to do this: a mailing not ready, a document without PDF."""


class Invalid(Refusal):
    """The request itself is wrong: an address, a header, a variable, too many recipients."""


__all__ = ["Conflict", "Gone", "Invalid", "NotFound", "Refusal"]
