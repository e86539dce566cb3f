"""Who may publish for which tenant, by the RabbitMQ user a message was published as.

RabbitMQ checks a message's `user_id` property against the user of the connection that publishes it and
refuses the message when they differ, so `user_id` names its publisher for sure when it is set. Every
publisher sets it: the services through `Bus`, and each integrating system, which publishes as a RabbitMQ
user of its own. A consumer then accepts a message from

- a Publipost service's user (its own, from RABBITMQ_URL, and those of `PUBLIPOST_BUS_SERVICE_USERS`), for
  any tenant: the services act for every tenant;
- an integrating system's user, for the tenants `PUBLIPOST_BUS_PUBLISHERS` gives it, unless the message
  names the person who asked (`requested_by`), which only a service may;

and dead-letters anything else before its handler runs, saying why: a message without `user_id` (its
publisher is unknown), of a user known to neither setting, or for a tenant its user may not publish for.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .retry import PermanentFailure


class PublisherRefused(PermanentFailure):
    """The message's publisher may not publish it (for that tenant, or at all)."""


def broker_user(url: str) -> str:
    """The RabbitMQ user of an amqp:// URL: the one its connection authenticates as (guest if it names none,
    as the AMQP clients do)."""
    return unquote(urlsplit(url).username or "guest")


@dataclass(frozen=True)
class Publishers:
    service_users: frozenset[str]
    tenants_of: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, service_users: Iterable[str], publishers: Mapping[str, Iterable[str]]) -> "Publishers":
        return cls(frozenset(service_users), {user: frozenset(tenants) for user, tenants in publishers.items()})

    def check(self, user_id: str | None, tenant_id: str, *, names_requester: bool = False) -> None:
        """PublisherRefused unless a message published as `user_id` may act for `tenant_id`. A message naming
        the person who asked (`requested_by`) must come from a service: that person's sharing of a sending
        account is trusted, and an integrating system could name anyone."""
        if not user_id:
            raise PublisherRefused(
                "the message does not name its publisher (no user_id property): publish as your own RabbitMQ "
                "user with user_id set to it"
            )
        if user_id in self.service_users:
            return
        if names_requester:
            raise PublisherRefused(
                f"RabbitMQ user {user_id!r} may not name who asked (requested_by): only Publipost's services "
                "do; leave it out, and the accounts shared with the integrator role are used"
            )
        tenants = self.tenants_of.get(user_id)
        if tenants is None:
            raise PublisherRefused(
                f"RabbitMQ user {user_id!r} is not a Publipost service and not an integrating system known here "
                "(PUBLIPOST_BUS_PUBLISHERS)"
            )
        if tenant_id not in tenants:
            allowed = ", ".join(repr(t) for t in sorted(tenants)) or "none"
            raise PublisherRefused(
                f"RabbitMQ user {user_id!r} may not publish for tenant {tenant_id!r} (its tenants: {allowed})"
            )
