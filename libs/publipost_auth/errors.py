"""Why a call is refused: each error becomes one HTTP answer (publipost_auth.dependency)."""


class AuthError(Exception):
    """Base of the errors below; the message is shown to the caller, so it never holds a secret."""


class InvalidCredentials(AuthError):
    """401: no credentials, or credentials that do not verify (bad signature, expired, wrong issuer...)."""


class Forbidden(AuthError):
    """403: the caller is known but may not do this (a role missing, another tenant, no tenant at all)."""


class IssuerUnavailable(AuthError):
    """503: the issuer's keys cannot be fetched and none are cached, so no token can be checked right now."""
