"""A tenant's switch for e-mail distribution (issue 16, point 10): off, a dispatch asked on the bus is
refused, recorded with the reason, and said on the bus; nothing is looked up."""

import pytest
from faststream.exceptions import SubscriberNotFound
from publipost_contracts import DispatchRefused, DispatchRequested
from publipost_dispatch.accounts import Accounts
from publipost_dispatch.app import build
from publipost_dispatch.domain import dispatch_key
from publipost_dispatch.model import EmailTurnedOff, NoSenderDomain, NotALocalPart, TenantSending
from publipost_dispatch.settings import DispatchSettings

from tests.unit.fakes.dispatch import (
    FakeAccountRepository,
    FakeDeliveryRepository,
    FakeDispatchRepository,
    FakeTenantSendingRepository,
)
from tests.unit.fakes.storage import FakeStorage
from tests.unit.in_memory import InMemoryService

OFF = "e-mail distribution is turned off for tenant 'acme'"


def test_a_tenant_sends_by_default_and_not_once_turned_off():
    TenantSending(id="acme").check_email_enabled()
    with pytest.raises(EmailTurnedOff, match=OFF):
        TenantSending(id="acme", email_enabled=False).check_email_enabled()


class NoMerge:
    async def mailing(self, tenant_id: str, mailing_id: str) -> None:
        raise AssertionError("a tenant that turned e-mail off has nothing looked up")


async def test_a_dispatch_of_a_tenant_that_turned_e_mail_off_is_refused_on_the_bus():
    settings = DispatchSettings(smtp_host="smtp.example.test", smtp_from="notices@acme.example")
    sending = FakeTenantSendingRepository()
    await sending.save(TenantSending(id="acme", email_enabled=False))
    service = InMemoryService(
        build(settings), storage=FakeStorage(), dispatches=FakeDispatchRepository(),
        deliveries=FakeDeliveryRepository(), accounts=Accounts(FakeAccountRepository(), FakeTenantSendingRepository(), settings),
        sending=sending, merge=NoMerge(),
    )  # fmt: skip
    async with service as dispatch:
        request = DispatchRequested(tenant_id="acme", correlation_id="c1", dispatch_id="d1", mailing_id="m1")
        with pytest.raises(SubscriberNotFound):  # dead-lettered, which the in-memory broker cannot
            await dispatch.deliver(request)

        (refused,) = dispatch.published(DispatchRefused)
        assert refused.reason.startswith(OFF)
        stored = await dispatch.ctx.dispatches.get(dispatch_key("acme", "d1"))
        assert (stored.status, stored.reason.startswith(OFF)) == ("refused", True)


def test_a_sender_prefix_is_a_local_part_on_the_platform_s_domain():
    choices = TenantSending(id="acme")
    with pytest.raises(NoSenderDomain, match="^sender_prefix: the platform has no sender domain"):
        choices.choose_prefix("billing", "")
    for bad in ["bill ing", "bill@ing", "", "a" * 65]:
        with pytest.raises(NotALocalPart, match="^sender_prefix: "):
            choices.choose_prefix(bad, "mail.publipost.test")
    choices.choose_prefix("acme.billing", "mail.publipost.test")
    assert choices.sender("mail.publipost.test") == "acme.billing@mail.publipost.test"
    assert choices.sender("") is None  # the domain removed since: the service's own sender again


async def test_the_default_account_sends_from_the_tenant_s_prefix_and_another_tenant_from_the_service_s():
    settings = DispatchSettings(sender="Publipost <no-reply@publipost.test>", sender_domain="mail.publipost.test")
    choices = FakeTenantSendingRepository()
    await choices.save(TenantSending(id="acme", sender_prefix="acme.billing"))
    accounts = Accounts(FakeAccountRepository(), choices, settings)

    acme = await accounts.get("acme", None)
    assert (acme.from_address, acme.from_name) == ("acme.billing@mail.publipost.test", "Publipost")
    assert (await accounts.get("globex", None)).from_address == "no-reply@publipost.test"
