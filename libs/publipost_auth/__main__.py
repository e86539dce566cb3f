"""`python -m publipost_auth create|list|revoke`: a tenant's API keys from a terminal, for the first admin
key of a tenant (before anyone can call /api-keys) and for operators. Reads MONGODB_URL and
PUBLIPOST_NAMESPACE like the services.

    python -m publipost_auth create --tenant acme --name "CRM" --role integrator
    python -m publipost_auth list --tenant acme
    python -m publipost_auth revoke --tenant acme 3f2a…
"""

import argparse
import asyncio
import sys

from publipost_settings import ServiceSettings
from pymongo import AsyncMongoClient

from .api_keys import ApiKeyRepository
from .principal import PEOPLE_ROLES, Role


async def run(args: argparse.Namespace) -> int:
    settings = ServiceSettings(service_name="identity")
    client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_url, tz_aware=True, serverSelectionTimeoutMS=5000)
    try:
        keys = ApiKeyRepository(client[settings.identity_database_name])
        if args.command == "create":
            await keys.ensure_indexes()
            new = await keys.create(args.tenant, args.name, [Role(r) for r in args.role], created_by="command line")
            print(f"key id {new.api_key.key_id}, roles {', '.join(sorted(new.api_key.roles))}")
            print("the key (shown this once, Publipost keeps only its hash):")
            print(new.key)
        elif args.command == "list":
            for key in await keys.list(args.tenant, limit=1000):
                state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
                used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
                roles = ",".join(sorted(key.roles))
                print(f"{key.key_id}  {key.name:<30} {roles:<30} {state:<24} last used {used}")
        elif args.command == "revoke":
            revoked = await keys.revoke(args.tenant, args.key_id)
            if revoked is None:
                print(f"no API key {args.key_id!r} in tenant {args.tenant!r}", file=sys.stderr)
                return 1
            print(f"{revoked.key_id} revoked")
    finally:
        await client.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m publipost_auth", description="API keys of a tenant.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="make a key and print it once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", required=True, help="who uses it")
    create.add_argument("--role", action="append", required=True, choices=sorted(PEOPLE_ROLES))
    listing = commands.add_parser("list", help="the tenant's keys, newest first")
    listing.add_argument("--tenant", required=True)
    revoke = commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("--tenant", required=True)
    revoke.add_argument("key_id")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
