"""`python -m publipost_dispatch.passwords reseal`: seal every stored SMTP password with the newest key.

Replacing the key that seals sending accounts' passwords (docs/dispatch.md, "Replacing the password key"):

1. put the new key last in `PUBLIPOST_ACCOUNT_KEY` on every replica (`old,new`): every replica can open
   what any other seals;
2. put it first (`new,old`): passwords saved from now on are sealed with it;
3. run this command (a Kubernetes Job, with dispatch's environment): every stored password is sealed
   again with the newest key; an account none of the keys opens (or sealed in the format used before
   Fernet, "s1.", which the reseal of commit f70124f migrates) is named, for a person to give its
   password again;
4. remove the old key (`new`).

It reads MONGODB_URL, PUBLIPOST_NAMESPACE and PUBLIPOST_ACCOUNT_KEY like the service, and may run while
the service does: an account saved meanwhile keeps what its edit sealed. Running it again changes nothing.
"""

import argparse
import asyncio
import sys
from dataclasses import dataclass, field

from publipost_storage import Storage

from .repository import AccountRepository
from .sealing import PasswordSeal, SealBroken
from .settings import DispatchSettings


@dataclass
class ResealReport:
    resealed: int = 0
    current: int = 0  # already sealed with the newest key
    saved_meanwhile: int = 0  # saved over HTTP while this ran: sealed by that edit
    broken: list[str] = field(default_factory=list)  # "tenant/account: why", for a person to re-enter


async def reseal_all(accounts: AccountRepository, seal: PasswordSeal) -> ResealReport:
    report = ResealReport()
    async for sealed in accounts.with_passwords():
        token, tenant_id, account_id = sealed.token, sealed.tenant_id, sealed.account_id
        if seal.is_current(token):
            report.current += 1
            continue
        try:
            resealed = seal.reseal(token, f"{tenant_id}/{account_id}")
        except SealBroken as exc:
            report.broken.append(f"{tenant_id}/{account_id}: {exc}")
            continue
        if await accounts.swap_password(tenant_id, account_id, token, resealed):
            report.resealed += 1
        else:
            report.saved_meanwhile += 1
    return report


async def run(settings: DispatchSettings) -> int:
    if settings.account_key is None:
        print("PUBLIPOST_ACCOUNT_KEY is not set: there is no key to seal with", file=sys.stderr)
        return 2
    seal = PasswordSeal(settings.account_key.get_secret_value())
    storage = Storage.for_service(settings)
    try:
        report = await reseal_all(AccountRepository(storage.db), seal)
    finally:
        await storage.close()
    print(
        f"{report.resealed} passwords sealed with the newest key, {report.current} already were, "
        f"{report.saved_meanwhile} saved meanwhile"
    )
    for line in report.broken:
        print(f"cannot open {line}: give this account's password again", file=sys.stderr)
    return 1 if report.broken else 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m publipost_dispatch.passwords", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("reseal", help="seal every stored password with the newest key of PUBLIPOST_ACCOUNT_KEY")
    parser.parse_args()
    return asyncio.run(run(DispatchSettings()))


if __name__ == "__main__":
    sys.exit(main())
