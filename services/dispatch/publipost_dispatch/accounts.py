"""From stored account to the `Account` a sender uses: the password unsealed only in memory, and the
service's own SMTP server as the account of a dispatch that names none."""

import dataclasses
import time
from email.utils import parseaddr

from publipost_contracts import Requester
from publipost_refusals import NotFound

from .domain import Account, Limits, TlsMode
from .model import SendingAccount
from .repository import AccountRepository, TenantSendingRepository
from .sealing import PasswordSeal
from .settings import DispatchSettings

DEFAULT_ACCOUNT_ID = "default"


class UnknownAccount(NotFound):
    def __init__(self, account_id: str) -> None:
        super().__init__(f"account_id: no sending account {account_id!r} for this tenant")


class NotShared(NotFound):
    """Answered as an unknown account: who may not send through an account need not learn it exists."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"account_id: no sending account {account_id!r} shared with you")


class NoSealKey(RuntimeError):
    def __init__(self) -> None:
        super().__init__("password: this dispatch service has no account_key to seal passwords with")


class Accounts:
    RECENT_S = 1.0  # every send reads its account; an edit reaches other replicas within this

    def __init__(self, repository: AccountRepository, choices: TenantSendingRepository, settings: DispatchSettings) -> None:
        self.repository = repository
        self.choices = choices
        self._recent: dict[tuple[str, str], tuple[float, Account]] = {}
        self._settings = settings
        key = settings.account_key.get_secret_value() if settings.account_key else None
        self._seal = PasswordSeal(key) if key else None
        name, address = parseaddr(settings.sender)
        self.default = Account(
            account_id=DEFAULT_ACCOUNT_ID,
            version=0,
            host=settings.smtp_host,
            port=settings.smtp_port,
            tls=TlsMode.STARTTLS if settings.smtp_starttls else TlsMode.NONE,
            login=settings.smtp_username,
            password=settings.smtp_password,
            from_address=address,
            from_name=name or None,
            reply_to=None,
            limits=Limits(connections=settings.smtp_connections, rate_per_s=settings.smtp_rate_per_s),
            pause_after_errors=settings.pause_after_errors,
        )

    def seal(self, password: str, tenant_id: str, account_id: str) -> str:
        if self._seal is None:
            raise NoSealKey()
        return self._seal.seal(password, f"{tenant_id}/{account_id}")

    def reseal(self, sealed: str, tenant_id: str, account_id: str) -> str:
        """The same password under the current seal (a token of an older format is replaced)."""
        if self._seal is None:
            raise NoSealKey()
        return self.seal(self._seal.open(sealed, f"{tenant_id}/{account_id}"), tenant_id, account_id)

    def opened(self, stored: SendingAccount) -> Account:
        """The account a send uses: its password unsealed, the service's error threshold if it sets none."""
        password = None
        if stored.password_sealed:
            if self._seal is None:
                raise NoSealKey()
            password = self._seal.open(stored.password_sealed, f"{stored.tenant_id}/{stored.id}")
        limits = stored.limits
        return Account(
            account_id=stored.id,
            version=stored.version,
            host=stored.host,
            port=stored.port,
            tls=stored.tls,
            login=stored.login,
            password=password,
            from_address=stored.from_address,
            from_name=stored.from_name,
            reply_to=stored.reply_to,
            limits=Limits(limits.connections, limits.rate_per_s, limits.daily_cap),
            pause_after_errors=stored.pause_after_errors or self._settings.pause_after_errors,
            verify_certificate=stored.verify_certificate,
            sharing=stored.sharing,
        )

    async def get(self, tenant_id: str, account_id: str | None) -> Account:
        account_id = account_id or DEFAULT_ACCOUNT_ID
        seen = self._recent.get((tenant_id, account_id))
        if seen is not None and time.monotonic() - seen[0] < self.RECENT_S:
            return seen[1]
        if account_id == DEFAULT_ACCOUNT_ID:
            # The service's server, from the tenant's prefix on the platform's domain when it chose one.
            sender = (await self.choices.get(tenant_id)).sender(self._settings.sender_domain)
            account = self.default if sender is None else dataclasses.replace(self.default, from_address=sender)
        else:
            stored = await self.repository.get(tenant_id, account_id)
            if stored is None:
                raise UnknownAccount(account_id)
            account = self.opened(stored)
        self._recent[(tenant_id, account_id)] = (time.monotonic(), account)
        return account

    async def for_requester(self, tenant_id: str, account_id: str | None, requester: Requester | None) -> Account:
        """The account, if `requester` may send through it (domain.Sharing); NotShared otherwise."""
        account = await self.get(tenant_id, account_id)
        if not account.sharing.allows(requester):
            raise NotShared(account.account_id)
        return account

    def forget(self, tenant_id: str, account_id: str) -> None:
        self._recent.pop((tenant_id, account_id), None)
